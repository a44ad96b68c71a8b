//! Scripts that run a grid's shards on a cluster: a Slurm array job and a Kubernetes
//! indexed Job. Each task runs `fl sweep ... --shard i/N` (or `fl grid ...`) into its own
//! folder; `fl sweep merge` (`fl grid merge`) joins the folders afterwards. A task that is
//! retried resumes: finished cells are skipped.

use std::fmt::Write as _;

/// What the scripts run.
#[derive(Debug, Clone)]
pub struct EmitOptions {
    /// The grid's name (job name).
    pub name: String,
    /// The `fl` subcommand that runs a shard: `sweep` or `grid`.
    pub command: String,
    /// How `fl sweep` finds the grid: `--preset quick` or `--grid FILE` (a path the tasks see).
    pub grid_args: String,
    /// Number of shards (array tasks / pods).
    pub shards: usize,
    /// Cores per task; also `--jobs`.
    pub cpus: usize,
    /// The folder the shard folders go under (as the tasks see it).
    pub out: String,
    /// Slurm time limit per task (`HH:MM:SS`).
    pub time: String,
    /// Container image holding `fl` (Kubernetes).
    pub image: String,
    /// Persistent volume claim mounted at `/results` (Kubernetes).
    pub claim: String,
    /// Persistent volume claim holding the datasets, mounted at `/data` (Kubernetes); the
    /// fidelity oracle caches itself there on first use.
    pub data_claim: String,
}

/// An sbatch array script: task `i` runs shard `i/N` into `<out>/shard-<i>`.
pub fn slurm(o: &EmitOptions) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "#!/bin/bash");
    let _ = writeln!(
        s,
        "# Sweep `{}` as {} Slurm array tasks, one shard each (submit: sbatch this-file).",
        o.name, o.shards
    );
    let _ = writeln!(
        s,
        "# A task that is requeued resumes its shard. When all are done:\n\
         #   fl {cmd} merge --out {out} {out}/shard-* && fl {cmd} report {out}",
        out = o.out,
        cmd = o.command
    );
    let _ = writeln!(s, "#SBATCH --job-name={}", o.name);
    let _ = writeln!(s, "#SBATCH --array=0-{}", o.shards.saturating_sub(1));
    let _ = writeln!(s, "#SBATCH --cpus-per-task={}", o.cpus);
    let _ = writeln!(s, "#SBATCH --time={}", o.time);
    let _ = writeln!(s, "#SBATCH --output={}-%A_%a.out", o.name);
    let _ = writeln!(s, "set -euo pipefail");
    let _ = writeln!(s, "FL=\"${{FL:-fl}}\"");
    let _ = writeln!(
        s,
        "\"$FL\" {} {} --out \"{}/shard-${{SLURM_ARRAY_TASK_ID}}\" \\\n    \
         --shard \"${{SLURM_ARRAY_TASK_ID}}/{}\" --jobs {} --quiet",
        o.command, o.grid_args, o.out, o.shards, o.cpus
    );
    s
}

/// A Kubernetes name: lower-case letters, digits and `-`, at most 63 characters.
fn k8s_name(name: &str) -> String {
    let s: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let s = s.trim_matches('-');
    let s = if s.is_empty() { "fl-sweep" } else { s };
    s.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// An indexed Job: pod `i` runs shard `i/N` into `/results/<out>/shard-<i>` on the claim.
pub fn k8s(o: &EmitOptions) -> String {
    let name = k8s_name(&o.name);
    format!(
        "# Sweep `{sweep}` as a Kubernetes indexed Job of {n} pods, one shard each\n\
         # (kubectl apply -f this-file). A retried pod resumes its shard. When all are done:\n\
         #   fl {cmd} merge --out /results/{out} /results/{out}/shard-* && fl {cmd} report /results/{out}\n\
         apiVersion: batch/v1\n\
         kind: Job\n\
         metadata:\n  name: {name}\n\
         spec:\n  completionMode: Indexed\n  completions: {n}\n  parallelism: {n}\n  backoffLimitPerIndex: 2\n\
         \x20 template:\n    spec:\n      restartPolicy: Never\n      containers:\n\
         \x20       - name: sweep\n          image: {image}\n\
         \x20         command: [\"sh\", \"-c\"]\n\
         \x20         args:\n            - >-\n              fl {cmd} {grid} --out /results/{out}/shard-$JOB_COMPLETION_INDEX\n\
         \x20             --shard $JOB_COMPLETION_INDEX/{n} --jobs {cpus} --quiet\n\
         \x20         env:\n            - name: FL_DATA_DIR\n              value: /data\n\
         \x20         resources:\n            requests:\n              cpu: \"{cpus}\"\n              memory: 4Gi\n\
         \x20         volumeMounts:\n            - name: results\n              mountPath: /results\n\
         \x20           - name: data\n              mountPath: /data\n\
         \x20     volumes:\n        - name: results\n          persistentVolumeClaim:\n            claimName: {claim}\n\
         \x20       - name: data\n          persistentVolumeClaim:\n            claimName: {data_claim}\n",
        sweep = o.name,
        cmd = o.command,
        n = o.shards,
        out = o.out.trim_start_matches("results/"),
        image = o.image,
        grid = o.grid_args,
        cpus = o.cpus,
        claim = o.claim,
        data_claim = o.data_claim,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> EmitOptions {
        EmitOptions {
            name: "sweep-full".into(),
            command: "sweep".into(),
            grid_args: "--preset full".into(),
            shards: 20,
            cpus: 4,
            out: "results/sweep-full".into(),
            time: "04:00:00".into(),
            image: "registry.example.org/fl:latest".into(),
            claim: "fl-results".into(),
            data_claim: "fl-datasets".into(),
        }
    }

    #[test]
    fn slurm_script() {
        insta::assert_snapshot!(slurm(&opts()));
    }

    #[test]
    fn k8s_job() {
        let text = k8s(&opts());
        insta::assert_snapshot!(text);
        assert!(!text.contains('\t'), "YAML has no tabs");
    }

    #[test]
    fn k8s_names_are_dns_labels() {
        assert_eq!(k8s_name("My_Sweep.v2"), "my-sweep-v2");
        assert_eq!(k8s_name("__"), "fl-sweep");
        assert_eq!(k8s_name(&"a".repeat(80)).len(), 63);
    }
}
