//! Choosing the compute device at run time.

use crate::error::{CoreError, Result};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

/// The backends a run can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceKind {
    /// burn-flex, the fast pure-Rust CPU backend (default).
    #[default]
    Flex,
    /// burn-ndarray, the older CPU backend (about 10x slower here; kept for comparison).
    Ndarray,
    /// wgpu: Vulkan/Metal/DX12 GPUs, or Mesa's software Vulkan (build feature `wgpu`).
    Wgpu,
    /// CUDA GPU 0 (build feature `cuda`).
    Cuda,
}

impl DeviceKind {
    /// Parses `flex`, `ndarray`, `wgpu` or `cuda`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "flex" | "cpu" => Ok(Self::Flex),
            "ndarray" => Ok(Self::Ndarray),
            "wgpu" => Ok(Self::Wgpu),
            "cuda" => Ok(Self::Cuda),
            other => Err(CoreError::Config(format!(
                "unknown device `{other}` (known: flex, ndarray, wgpu, cuda)"
            ))),
        }
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Ndarray => "ndarray",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
        }
    }

    /// The burn device (without autodiff), or why it is not available in this build.
    pub fn device(self) -> Result<Device> {
        match self {
            Self::Flex => Ok(Device::flex()),
            #[allow(deprecated)]
            Self::Ndarray => Ok(Device::ndarray()),
            Self::Wgpu => wgpu_device(),
            Self::Cuda => cuda_device(),
        }
    }

    /// Whether several clients may train at once on separate threads of this device.
    pub fn is_cpu(self) -> bool {
        matches!(self, Self::Flex | Self::Ndarray)
    }
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_device() -> Result<Device> {
    Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device() -> Result<Device> {
    Err(CoreError::Config(
        "device `wgpu` is not in this build: rebuild with `--features wgpu`".into(),
    ))
}

#[cfg(feature = "cuda")]
fn cuda_device() -> Result<Device> {
    Ok(Device::cuda(0))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device() -> Result<Device> {
    Err(CoreError::Config(
        "device `cuda` is not in this build: rebuild with `--features cuda`".into(),
    ))
}
