//! Arguments `fl sweep` and `fl grid` share: merging shard folders, and the cluster scripts
//! that run the shards.

use std::path::PathBuf;

/// `merge`: shard folders joined into one.
#[derive(clap::Args)]
pub struct MergeArgs {
    /// The merged folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Shard folders.
    #[arg(required = true)]
    pub shards: Vec<PathBuf>,
    /// Write the report of the merged folder (its tables and pictures).
    #[arg(long)]
    pub report: bool,
}

/// What a Slurm array script asks for beyond the shards.
#[derive(clap::Args)]
pub struct SlurmArgs {
    /// Time limit per task.
    #[arg(long, default_value = "08:00:00")]
    pub time: String,
}

/// What a Kubernetes indexed Job needs beyond the shards.
#[derive(clap::Args)]
pub struct K8sArgs {
    /// Container image with `fl` on its PATH.
    #[arg(long)]
    pub image: String,
    /// Persistent volume claim for the results (mounted at /results).
    #[arg(long, default_value = "fl-results")]
    pub claim: String,
    /// Persistent volume claim holding the datasets (mounted at /data).
    #[arg(long, default_value = "fl-datasets")]
    pub data_claim: String,
}
