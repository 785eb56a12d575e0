use beamport::{process, Name, Opt, Port, Request};
use std::time::Duration;

#[test]
fn seed_cat() {
    let me = process::current();
    let port = Port::open(Name::spawn("cat"), [Opt::Binary]).unwrap();
    port.send(me.pid(), Request::command("hello"));
    let m = me.receive_timeout(Duration::from_secs(5)).unwrap().unwrap();
    println!("{m:?}");
    port.send(me.pid(), Request::command("world"));
    let m = me.receive_timeout(Duration::from_secs(5)).unwrap().unwrap();
    println!("{m:?}");
    port.send(me.pid(), Request::Close);
    let m = me.receive_timeout(Duration::from_secs(5)).unwrap().unwrap();
    println!("{m:?}");
    println!("{:?}", beamport::doctor::report().unwrap());
}
