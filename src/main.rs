fn main() {
    for crd in sovra::crd::all() {
        print!("{}", sovra::crd::to_yaml(&crd).unwrap_or_default());
    }
}
