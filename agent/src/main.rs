fn main() {
    println!("gitops-agent {}", env!("CARGO_PKG_VERSION"));
}
