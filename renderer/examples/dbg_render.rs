fn main() {
    let a: Vec<String> = std::env::args().collect();
    let src = renderer::FsSource::new(&a[1]).unwrap();
    let reorder = if a.get(3).map(String::as_str) == Some("none") {
        renderer::Reorder::None
    } else {
        renderer::Reorder::Legacy
    };
    match renderer::render(
        &src,
        a.get(2).map(String::as_str).unwrap_or(""),
        &renderer::RenderOptions { reorder },
    ) {
        Ok(r) => print!("{}", r.to_yaml()),
        Err(e) => {
            eprintln!("ERR {e}");
            std::process::exit(1)
        }
    }
}
