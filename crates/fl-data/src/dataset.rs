//! Datasets: MNIST and Fashion-MNIST as `u8` pixels and labels, loaded from IDX files.

use crate::error::{DataError, Result};
use crate::idx::read_idx;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The shape of one image: channels, then height and width, pixels stored channel after
/// channel, row after row (the layout of burn's and PyTorch's `[batch, channels, h, w]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageShape {
    /// Colour channels (1 for grey-scale).
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl ImageShape {
    /// A grey-scale image of `height` x `width`.
    pub const fn grey(height: usize, width: usize) -> Self {
        Self {
            channels: 1,
            height,
            width,
        }
    }

    /// Values per image (channels x height x width).
    pub const fn pixels(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The side of a square image, `None` when height and width differ.
    pub fn side(&self) -> Option<usize> {
        (self.height == self.width).then_some(self.height)
    }
}

impl std::fmt::Display for ImageShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.channels, self.height, self.width)
    }
}

/// The datasets this project knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// MNIST handwritten digits (LeCun, Cortes, Burges), CC BY-SA 3.0.
    Mnist,
    /// Fashion-MNIST (Zalando Research), MIT.
    FashionMnist,
}

/// Train or test split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Split {
    /// The training split (60000 images in the full data).
    Train,
    /// The test split (10000 images in the full data).
    Test,
}

/// One of the four files of a dataset, with the SHA-256 of its uncompressed bytes.
#[derive(Debug, Clone, Copy)]
pub struct DataFile {
    /// Official file name without `.gz`.
    pub name: &'static str,
    /// SHA-256 (hex) of the uncompressed bytes.
    pub sha256: &'static str,
}

impl DatasetKind {
    /// Both datasets.
    pub const ALL: [DatasetKind; 2] = [DatasetKind::Mnist, DatasetKind::FashionMnist];

    /// The name used in configs, on the command line and as the folder name.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
        }
    }

    /// The name in titles and prose: "MNIST", "Fashion-MNIST".
    pub fn title(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "MNIST",
            DatasetKind::FashionMnist => "Fashion-MNIST",
        }
    }

    /// Parses `mnist` or `fashion-mnist`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "mnist" => Ok(DatasetKind::Mnist),
            "fashion-mnist" | "fashion_mnist" | "fmnist" => Ok(DatasetKind::FashionMnist),
            other => Err(DataError::UnknownDataset(other.to_string())),
        }
    }

    /// Human-readable class names, index = label; their number is the number of classes.
    pub fn class_names(self) -> &'static [&'static str] {
        match self {
            DatasetKind::Mnist => &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            DatasetKind::FashionMnist => &[
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
        }
    }

    /// Number of classes (labels are `0..classes()`).
    pub fn classes(self) -> usize {
        self.class_names().len()
    }

    /// The shape of its images (what [`Dataset::load`] requires of the files).
    pub fn shape(self) -> ImageShape {
        match self {
            DatasetKind::Mnist | DatasetKind::FashionMnist => ImageShape::grey(28, 28),
        }
    }

    /// The four files (train images, train labels, test images, test labels).
    pub fn files(self) -> [DataFile; 4] {
        let f = |name, sha256| DataFile { name, sha256 };
        match self {
            DatasetKind::Mnist => [
                f(
                    "train-images-idx3-ubyte",
                    "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                ),
                f(
                    "train-labels-idx1-ubyte",
                    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                ),
                f(
                    "t10k-images-idx3-ubyte",
                    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                ),
                f(
                    "t10k-labels-idx1-ubyte",
                    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
                ),
            ],
            DatasetKind::FashionMnist => [
                f(
                    "train-images-idx3-ubyte",
                    "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                ),
                f(
                    "train-labels-idx1-ubyte",
                    "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                ),
                f(
                    "t10k-images-idx3-ubyte",
                    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                ),
                f(
                    "t10k-labels-idx1-ubyte",
                    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                ),
            ],
        }
    }

    /// Official HTTP mirrors, tried in order; each serves `<name>.gz` under the base URL.
    pub fn mirrors(self) -> &'static [&'static str] {
        match self {
            DatasetKind::Mnist => &[
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                "https://storage.googleapis.com/cvdf-datasets/mnist/",
                "http://yann.lecun.com/exdb/mnist/",
            ],
            DatasetKind::FashionMnist => &[
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
            ],
        }
    }

    /// (images, labels) file names of a split.
    pub fn split_files(self, split: Split) -> (DataFile, DataFile) {
        let [tri, trl, tei, tel] = self.files();
        match split {
            Split::Train => (tri, trl),
            Split::Test => (tei, tel),
        }
    }
}

impl std::fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Finds `<dir>/<name>.gz` or `<dir>/<name>`, preferring the compressed file.
pub fn locate(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(format!("{name}.gz")), dir.join(name)]
        .into_iter()
        .find(|p| p.is_file())
}

/// Labelled images: `u8` pixels (one image after another, each laid out as [`ImageShape`]
/// says) and labels. Shape and classes are the data's, read at load time, not constants.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Which dataset the images come from.
    pub kind: DatasetKind,
    /// Pixels, `len() * shape.pixels()` bytes.
    pub images: Vec<u8>,
    /// One label per image, each `< kind.classes()`.
    pub labels: Vec<u8>,
    /// The shape of every image.
    pub shape: ImageShape,
}

impl Dataset {
    /// Builds a dataset, checking that pixels, labels and class range agree.
    pub fn new(
        kind: DatasetKind,
        images: Vec<u8>,
        labels: Vec<u8>,
        shape: ImageShape,
    ) -> Result<Self> {
        let px = shape.pixels();
        if px == 0 || images.len() != labels.len() * px {
            return Err(DataError::Mismatch(format!(
                "{} labels need {} pixels of {shape} images, got {}",
                labels.len(),
                labels.len() * px,
                images.len()
            )));
        }
        let classes = kind.classes();
        if let Some(bad) = labels.iter().position(|&l| l as usize >= classes) {
            return Err(DataError::Mismatch(format!(
                "label {} at index {bad} is out of range 0..{classes}",
                labels[bad]
            )));
        }
        Ok(Self {
            kind,
            images,
            labels,
            shape,
        })
    }

    /// Number of classes (labels are `0..classes()`).
    pub fn classes(&self) -> usize {
        self.kind.classes()
    }

    /// Loads a split from `<root>/<dataset name>/` (IDX files, raw or gzip).
    pub fn load(root: &Path, kind: DatasetKind, split: Split) -> Result<Self> {
        let dir = root.join(kind.name());
        let (img_file, lbl_file) = kind.split_files(split);
        let find = |f: DataFile| {
            locate(&dir, f.name).ok_or_else(|| DataError::Io {
                path: dir.join(format!("{}.gz", f.name)),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "file not found (run `cargo xtask download` or point --data-dir at the data)",
                ),
            })
        };
        let img_path = find(img_file)?;
        let lbl_path = find(lbl_file)?;
        let images = read_idx(&img_path, 3)?;
        let labels = read_idx(&lbl_path, 1)?;
        if images.dims[0] != labels.dims[0] {
            return Err(DataError::Mismatch(format!(
                "{} holds {} images but {} holds {} labels",
                img_path.display(),
                images.dims[0],
                lbl_path.display(),
                labels.dims[0]
            )));
        }
        let shape = ImageShape::grey(images.dims[1], images.dims[2]);
        if shape != kind.shape() {
            return Err(DataError::Mismatch(format!(
                "{} holds {shape} images; {} has {} ones",
                img_path.display(),
                kind.title(),
                kind.shape()
            )));
        }
        Self::new(kind, images.data, labels.data, shape)
            .map_err(|e| DataError::Mismatch(format!("{}: {e}", lbl_path.display())))
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels per image.
    pub fn pixels(&self) -> usize {
        self.shape.pixels()
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let p = self.pixels();
        &self.images[i * p..(i + 1) * p]
    }

    /// The images at `indices`, in that order, as a new dataset.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let mut images = Vec::with_capacity(indices.len() * self.pixels());
        for &i in indices {
            images.extend_from_slice(self.image(i));
        }
        Dataset {
            kind: self.kind,
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            shape: self.shape,
        }
    }

    /// This dataset's images followed by `other`'s (same kind and image shape).
    pub fn concat(&self, other: &Dataset) -> Result<Dataset> {
        if (self.kind, self.shape) != (other.kind, other.shape) {
            return Err(DataError::Mismatch(format!(
                "cannot pool {} {} images with {} {} ones",
                self.kind.name(),
                self.shape,
                other.kind.name(),
                other.shape
            )));
        }
        let mut out = self.clone();
        out.images.extend_from_slice(&other.images);
        out.labels.extend_from_slice(&other.labels);
        Ok(out)
    }

    /// Number of images of each class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.classes()];
        for &l in &self.labels {
            c[l as usize] += 1;
        }
        c
    }

    /// Appends the images at `indices`, normalised to [-1, 1], to `out`.
    pub fn normalized_into(&self, indices: &[usize], out: &mut Vec<f32>) {
        out.reserve(indices.len() * self.pixels());
        for &i in indices {
            out.extend(self.image(i).iter().map(|&p| normalize_pixel(p)));
        }
    }
}

/// Maps a pixel 0..=255 to [-1, 1] (the range of the GAN generator's tanh output).
#[inline]
pub fn normalize_pixel(p: u8) -> f32 {
    p as f32 / 127.5 - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idx::write_idx;

    fn tiny() -> Dataset {
        Dataset::new(
            DatasetKind::Mnist,
            vec![0, 255, 10, 20, 30, 40],
            vec![3, 9, 3],
            ImageShape::grey(1, 2),
        )
        .unwrap()
    }

    #[test]
    fn concat_appends_and_refuses_other_shapes() {
        let a = tiny();
        let b = a.subset(&[2, 0]);
        let c = a.concat(&b).unwrap();
        assert_eq!(c.labels, [3, 9, 3, 3, 3]);
        assert_eq!(c.image(3), &[30, 40]);
        assert_eq!(c.image(4), &[0, 255]);
        let other = Dataset::new(
            DatasetKind::Mnist,
            vec![1, 2],
            vec![0],
            ImageShape::grey(2, 1),
        )
        .unwrap();
        assert!(a.concat(&other).is_err());
    }

    #[test]
    fn normalisation_hits_both_ends() {
        assert_eq!(normalize_pixel(0), -1.0);
        assert_eq!(normalize_pixel(255), 1.0);
        let mut v = Vec::new();
        tiny().normalized_into(&[0], &mut v);
        assert_eq!(v, vec![-1.0, 1.0]);
    }

    #[test]
    fn subset_and_counts() {
        let d = tiny().subset(&[2, 0]);
        assert_eq!(d.labels, vec![3, 3]);
        assert_eq!(d.images, vec![30, 40, 0, 255]);
        assert_eq!(d.class_counts()[3], 2);
    }

    #[test]
    fn rejects_label_out_of_range() {
        let e = Dataset::new(
            DatasetKind::Mnist,
            vec![0; 2],
            vec![10, 1],
            ImageShape::grey(1, 1),
        )
        .unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
    }

    #[test]
    fn rejects_pixel_count_mismatch() {
        assert!(
            Dataset::new(
                DatasetKind::Mnist,
                vec![0; 3],
                vec![1, 1],
                ImageShape::grey(1, 1)
            )
            .is_err()
        );
    }

    #[test]
    fn load_round_trip_count_and_shape_mismatch() {
        let dir = crate::scratch::ScratchDir::new("fl-data-test").unwrap();
        let d = dir.path().join("mnist");
        let (img, lbl) = DatasetKind::Mnist.split_files(Split::Test);
        let pixels: Vec<u8> = (0..3 * 784).map(|i| (i % 251) as u8).collect();
        let three = Dataset::new(
            DatasetKind::Mnist,
            pixels.clone(),
            vec![3, 9, 3],
            ImageShape::grey(28, 28),
        )
        .unwrap();
        let img_path = d.join(format!("{}.gz", img.name));
        write_idx(&img_path, &[3, 28, 28], &pixels, true).unwrap();
        write_idx(&d.join(lbl.name), &[3], &three.labels, false).unwrap();
        let loaded = Dataset::load(dir.path(), DatasetKind::Mnist, Split::Test).unwrap();
        assert_eq!(loaded, three);
        write_idx(&d.join(lbl.name), &[2], &[1, 2], false).unwrap();
        let e = Dataset::load(dir.path(), DatasetKind::Mnist, Split::Test).unwrap_err();
        assert!(e.to_string().contains("3 images but"), "{e}");
        // Images of another shape than the dataset's are refused by name.
        write_idx(&img_path, &[3, 1, 2], &tiny().images, true).unwrap();
        write_idx(&d.join(lbl.name), &[3], &tiny().labels, false).unwrap();
        let e = Dataset::load(dir.path(), DatasetKind::Mnist, Split::Test).unwrap_err();
        assert!(
            e.to_string()
                .contains("holds 1x1x2 images; MNIST has 1x28x28"),
            "{e}"
        );
    }

    #[test]
    fn missing_files_are_named() {
        let dir = crate::scratch::ScratchDir::new("fl-data-test").unwrap();
        let e = Dataset::load(dir.path(), DatasetKind::FashionMnist, Split::Train).unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("fashion-mnist") && m.contains("train-images"),
            "{m}"
        );
    }
}
