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

    /// The device's memory as its runtime reports it; `None` on the CPU backends, whose
    /// tensors live in host memory without a device pool, and where the device is not in
    /// this build.
    pub fn memory(self) -> Option<DeviceMemory> {
        if self.is_cpu() {
            return None;
        }
        let usage = self.device().ok()?.memory_pool_usage()?;
        Some(DeviceMemory {
            reserved: usage.bytes_reserved,
            capacity: self.capacity(),
        })
    }

    fn capacity(self) -> Option<u64> {
        match self {
            Self::Wgpu => wgpu_capacity(),
            Self::Cuda => cuda_capacity(),
            Self::Flex | Self::Ndarray => None,
        }
    }
}

/// A GPU's memory, in bytes: what a sweep sizes its concurrent runs by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceMemory {
    /// What the device's allocator holds now: live tensors and the pages it keeps for reuse.
    pub reserved: u64,
    /// How much the device may hold at once, where its runtime states it (CUDA: the card's
    /// memory; Vulkan: the largest device-local heap, system memory on a software driver).
    pub capacity: Option<u64>,
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

#[cfg(feature = "wgpu")]
fn wgpu_capacity() -> Option<u64> {
    // The device `Device::wgpu(DefaultDevice)` opens; its client is shared, not a second one.
    let device = burn::cubecl::Device::wgpu(burn::cubecl::device::WgpuDeviceKind::DefaultDevice);
    device.ok()?.client().properties().memory.max_memory()
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_capacity() -> Option<u64> {
    None
}

#[cfg(feature = "cuda")]
fn cuda_capacity() -> Option<u64> {
    let device = burn::cubecl::Device::cuda(0).ok()?;
    device.client().properties().memory.max_memory()
}

#[cfg(not(feature = "cuda"))]
fn cuda_capacity() -> Option<u64> {
    None
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
