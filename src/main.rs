fn main() {
    println!("meterflow");
}
