//! The GAN of the reconstruction attack (Hitaj et al.): a generator that learns to draw a class
//! it has never seen by fooling a frozen copy of the shared classifier.
//!
//! - [`generator`]: the DCGAN-style generator (z in R^100 -> 28x28 image in [-1, 1]), seeded;
//! - [`gan`]: [`Gan`], the generator with its Adam state, trained against a frozen
//!   discriminator towards a chosen class, and sampled;
//! - [`kernels`]: the generator's forward and backward passes on the CPU kernels;
//! - [`grid`]: image grids as PNG files a person can look at;
//! - [`oracle`]: an independent classifier trained centrally on the real data, cached on disk,
//!   that scores how recognisable the reconstructions are (fidelity).
//!
//! ```no_run
//! use fl_gan::{Gan, GanConfig};
//! # fn demo(spec: &fl_core::train::ModelSpec, global: &[f32]) -> fl_core::Result<()> {
//! let mut gan = Gan::new(GanConfig::default(), spec, 7);
//! let stats = gan.train_against(spec, global, 3, 1)?; // draw class 3, attack round 1
//! let images = gan.sample(64, &mut fl_data::rng::stream(7, "grid", &[]));
//! let shape = fl_gan::generator::IMAGE;
//! fl_gan::grid::write_png("samples.png".as_ref(), &images, shape, 8, 8, 3)?;
//! # Ok(()) }
//! ```

pub mod gan;
pub mod generator;
pub mod grid;
pub mod kernels;
pub mod oracle;

pub use gan::{Gan, GanConfig, GanState, GanStats};
pub use generator::Generator;
