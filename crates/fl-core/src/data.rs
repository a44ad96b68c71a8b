//! A participant's local data as the model consumes it: normalised `f32` images and labels.

use fl_data::dataset::normalize_pixel;
use fl_data::{Dataset, ImageShape};

/// Images in [-1, 1] (`len * shape.pixels()` values) and their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalData {
    /// Normalised pixels, one image after another.
    pub images: Vec<f32>,
    /// Labels; may include the extra "fake" label K for attacks.
    pub labels: Vec<u8>,
    /// The shape of every image.
    pub shape: ImageShape,
}

impl LocalData {
    /// No images yet, of this shape.
    pub fn empty(shape: ImageShape) -> Self {
        Self::new(Vec::new(), Vec::new(), shape)
    }

    /// Images (`labels.len() * shape.pixels()` values) and their labels.
    ///
    /// # Panics
    /// When the number of values does not match.
    pub fn new(images: Vec<f32>, labels: Vec<u8>, shape: ImageShape) -> Self {
        assert_eq!(
            images.len(),
            labels.len() * shape.pixels(),
            "{} labels of {shape} images",
            labels.len()
        );
        Self {
            images,
            labels,
            shape,
        }
    }

    /// The images of `ds` at `indices`.
    pub fn from_dataset(ds: &Dataset, indices: &[usize]) -> Self {
        let mut images = Vec::new();
        ds.normalized_into(indices, &mut images);
        Self {
            images,
            labels: indices.iter().map(|&i| ds.labels[i]).collect(),
            shape: ds.shape,
        }
    }

    /// All images of `ds`.
    pub fn all(ds: &Dataset) -> Self {
        Self {
            images: ds.images.iter().map(|&p| normalize_pixel(p)).collect(),
            labels: ds.labels.clone(),
            shape: ds.shape,
        }
    }

    /// Values per image.
    pub fn pixels(&self) -> usize {
        self.shape.pixels()
    }

    /// Samples `a..b` as a new set.
    pub fn slice(&self, a: usize, b: usize) -> Self {
        let p = self.pixels();
        Self {
            images: self.images[a * p..b * p].to_vec(),
            labels: self.labels[a..b].to_vec(),
            shape: self.shape,
        }
    }

    /// The samples at `indices`, in that order, as a new set.
    pub fn subset(&self, indices: &[usize]) -> Self {
        let p = self.pixels();
        let mut images = Vec::with_capacity(indices.len() * p);
        for &i in indices {
            images.extend_from_slice(&self.images[i * p..(i + 1) * p]);
        }
        Self {
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            shape: self.shape,
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
        let p = self.pixels();
        &self.images[i * p..(i + 1) * p]
    }

    /// Adds one sample (e.g. a generated image with the label an attack chose).
    pub fn push(&mut self, image: &[f32], label: u8) {
        assert_eq!(
            image.len(),
            self.pixels(),
            "a {} image has {} values",
            self.shape,
            self.pixels()
        );
        self.images.extend_from_slice(image);
        self.labels.push(label);
    }

    /// Appends all of `other`.
    ///
    /// # Panics
    /// When the image shapes differ.
    pub fn extend(&mut self, other: &LocalData) {
        assert_eq!(self.shape, other.shape, "images of one shape");
        self.images.extend_from_slice(&other.images);
        self.labels.extend_from_slice(&other.labels);
    }
}
