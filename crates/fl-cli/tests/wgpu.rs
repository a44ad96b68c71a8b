//! A sweep on the wgpu device (build feature `wgpu`; Mesa's software Vulkan where there is no
//! GPU): with `--jobs 0` the first cell's memory is measured, as many cells as the budget holds
//! run at once, and they give the numbers they give one at a time.
//!
//! Run with `cargo test --workspace --features fl-cli/wgpu --test wgpu`.
#![cfg(feature = "wgpu")]

mod common;

use common::{numbers, opts, tiny_grid};
use fl_cli::sweep::Grid;
use fl_cli::sweep::run::{jobs_for_memory, plan_line, run};
use fl_data::scratch::ScratchDir;

#[test]
fn cells_fitted_into_device_memory_give_the_numbers_of_one_at_a_time() {
    let tmp = ScratchDir::new("sweep-wgpu").unwrap();
    let mut grid = Grid::load(&tiny_grid(tmp.path())).unwrap();
    grid.set(&["device=wgpu".to_string()]).unwrap();

    let alone = tmp.path().join("alone");
    let mut o = opts(alone.clone(), None, true);
    o.jobs = 1;
    let r = run(&grid, &o).unwrap();
    assert_eq!(
        (r.ran, r.jobs, r.memory),
        (3, 1, None),
        "--jobs 1 measures nothing"
    );

    let fitted = tmp.path().join("fitted");
    let mut o = opts(fitted.clone(), None, true);
    o.jobs = 0;
    o.device_memory = Some(1 << 30);
    let r = run(&grid, &o).unwrap();
    let plan = r
        .memory
        .expect("a GPU sweep with --jobs 0 fits its cells to memory");
    println!("{}", plan_line(&plan));
    assert!(plan.per_cell > 0, "a cell allocates on the device");
    assert_eq!(plan.budget, Some(1 << 30));
    // After the first cell, two groups are left (G = 1 with one target, G = 4).
    assert_eq!(
        plan.jobs,
        jobs_for_memory(1 << 30, plan.baseline, plan.per_cell, 2)
    );
    assert_eq!(plan.jobs, 2, "two small cells fit in 1 GiB");
    assert_eq!((r.ran, r.jobs), (3, 2));
    assert_eq!(numbers(&alone), numbers(&fitted));
}
