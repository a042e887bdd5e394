//! Work split over the machine's cores with scoped threads, results in input order, so a
//! parallel step returns exactly what the sequential one would.

use std::sync::OnceLock;

/// Cores available to this process (the count is read once: it costs system calls).
pub(crate) fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `f` over contiguous chunks of `items` of at least `min_chunk` items, one chunk per core;
/// the results in chunk order. Below two chunks' worth it runs on the calling thread.
pub(crate) fn map_chunks<T: Sync, R: Send>(
    items: &[T],
    min_chunk: usize,
    f: impl Fn(&[T]) -> R + Sync,
) -> Vec<R> {
    let threads = cores().min(items.len() / min_chunk.max(1)).max(1);
    if threads == 1 {
        return vec![f(items)];
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .skip(1)
            .map(|c| s.spawn(move || f(c)))
            .collect();
        // The calling thread takes the first chunk instead of waiting idle.
        let mut out = vec![f(&items[..chunk.min(items.len())])];
        for h in handles {
            out.push(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        out
    })
}

/// `f` over every item, in parallel chunks; the results in item order.
pub(crate) fn map<T: Sync, R: Send>(
    items: &[T],
    min_chunk: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    map_chunks(items, min_chunk, |c| c.iter().map(&f).collect::<Vec<_>>())
        .into_iter()
        .flatten()
        .collect()
}

/// `f` on every item in place, in parallel chunks.
pub(crate) fn for_each_mut<T: Send>(items: &mut [T], min_chunk: usize, f: impl Fn(&mut T) + Sync) {
    let threads = cores().min(items.len() / min_chunk.max(1)).max(1);
    if threads == 1 {
        items.iter_mut().for_each(f);
        return;
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let mut chunks = items.chunks_mut(chunk);
        let first = chunks.next();
        for c in chunks {
            s.spawn(move || c.iter_mut().for_each(f));
        }
        first.into_iter().flatten().for_each(f);
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_keep_input_order() {
        let items: Vec<usize> = (0..1000).collect();
        assert_eq!(
            super::map(&items, 1, |x| x * 2),
            (0..1000).map(|x| x * 2).collect::<Vec<_>>()
        );
        let mut v = items.clone();
        super::for_each_mut(&mut v, 1, |x| *x += 1);
        assert_eq!(v, (1..1001).collect::<Vec<_>>());
        assert_eq!(super::map_chunks(&items[..3], 10, <[usize]>::len), vec![3]);
    }
}
