//! The one worker pool: a federation's clients, a sweep's cell groups and a table's runs are
//! handed out to scoped worker threads in order, and the results are put back in item order,
//! so scheduling never changes what a caller sees.

use std::sync::Mutex;

/// `f` of every item, computed on `workers` scoped threads (on the calling thread when
/// `workers <= 1` or there is at most one item), in item order. Items are taken in order as
/// workers become free.
pub fn map_ordered<T, R, F>(items: Vec<T>, workers: usize, f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    let n = items.len();
    if workers <= 1 || n <= 1 {
        return items.into_iter().map(f).collect();
    }
    let queue = Mutex::new(items.into_iter().enumerate());
    let results: Vec<Mutex<Option<R>>> = (0..n).map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..workers.min(n) {
            s.spawn(|| {
                loop {
                    // Taken in its own statement: a guard held in the `let` of a loop
                    // condition would serialise the workers.
                    let next = queue.lock().expect("queue lock").next();
                    let Some((slot, item)) = next else { break };
                    let r = f(item);
                    *results[slot].lock().expect("result lock") = Some(r);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .expect("result lock")
                .expect("every item was taken")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_item_order_whatever_the_workers() {
        let items: Vec<u64> = (0..50).collect();
        let slow_square = |x: u64| {
            // Uneven work, so workers finish out of order.
            std::thread::sleep(std::time::Duration::from_micros((50 - x) * 20));
            x * x
        };
        let want: Vec<u64> = items.iter().map(|x| x * x).collect();
        for workers in [0, 1, 2, 7, 100] {
            assert_eq!(map_ordered(items.clone(), workers, slow_square), want);
        }
        assert!(map_ordered(Vec::<u64>::new(), 4, slow_square).is_empty());
    }

    #[test]
    fn every_worker_takes_part() {
        let seen = Mutex::new(std::collections::HashSet::new());
        map_ordered((0..40).collect(), 4, |_: i32| {
            seen.lock().unwrap().insert(std::thread::current().id());
            std::thread::sleep(std::time::Duration::from_millis(2));
        });
        assert!(seen.into_inner().unwrap().len() > 1);
    }
}
