fn main() {
    println!("kubectl-gitops {}", env!("CARGO_PKG_VERSION"));
}
