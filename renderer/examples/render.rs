//! Renders `ROOT/DIR` to stdout with the library alone, as the render benchmark's child
//! does: the binary to run under `perf` when profiling the renderer.
//!
//! ```text
//! cargo build --release -p renderer --example render
//! perf record -g target/release/examples/render ROOT clusters/prod > /dev/null
//! ```

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, root, dir] = &args[..] else {
        eprintln!("usage: render ROOT DIR");
        std::process::exit(2);
    };
    let start = std::time::Instant::now();
    let src = renderer::FsSource::new(root).expect("source root");
    let rendered = renderer::render(&src, dir, &renderer::RenderOptions::default())
        .unwrap_or_else(|e| panic!("render failed: {e}"));
    let yaml = rendered.to_yaml();
    let took = start.elapsed();
    print!("{yaml}");
    eprintln!("{} objects in {took:?}", rendered.objects.len());
}
