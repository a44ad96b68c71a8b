//! A participant's local data as the model consumes it: normalised `f32` images and labels.

use fl_data::Dataset;
use fl_data::dataset::normalize_pixel;

/// Pixels per image (28 x 28).
pub const PIXELS: usize = crate::model::SIDE * crate::model::SIDE;

/// Images in [-1, 1] (`len * 784` values) and their labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocalData {
    /// Normalised pixels, one image after another.
    pub images: Vec<f32>,
    /// Labels; may include the extra "fake" label K for attacks.
    pub labels: Vec<u8>,
}

impl LocalData {
    /// The images of `ds` at `indices`.
    pub fn from_dataset(ds: &Dataset, indices: &[usize]) -> Self {
        let mut images = Vec::new();
        ds.normalized_into(indices, &mut images);
        Self {
            images,
            labels: indices.iter().map(|&i| ds.labels[i]).collect(),
        }
    }

    /// All images of `ds`.
    pub fn all(ds: &Dataset) -> Self {
        Self {
            images: ds.images.iter().map(|&p| normalize_pixel(p)).collect(),
            labels: ds.labels.clone(),
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image `i`'s pixels.
    pub fn image(&self, i: usize) -> &[f32] {
        &self.images[i * PIXELS..(i + 1) * PIXELS]
    }

    /// Adds one sample (e.g. a generated image with the label an attack chose).
    pub fn push(&mut self, image: &[f32], label: u8) {
        assert_eq!(image.len(), PIXELS, "an image has {PIXELS} pixels");
        self.images.extend_from_slice(image);
        self.labels.push(label);
    }

    /// Appends all of `other`.
    pub fn extend(&mut self, other: &LocalData) {
        self.images.extend_from_slice(&other.images);
        self.labels.extend_from_slice(&other.labels);
    }
}
