use beamport::{process, Message, Name, Opt, Port, PortMsg};
use std::time::Instant;
fn main() {
    let me = process::current();
    let n = 2000;
    let _ = beamport::doctor::report();
    let t = Instant::now();
    for _ in 0..n {
        let _p = Port::open(Name::executable("/bin/true"), [Opt::ExitStatus]).unwrap();
        loop {
            match me.receive().unwrap() {
                Message::Port(_, PortMsg::ExitStatus(_)) => break,
                _ => {}
            }
        }
        let _ = me.flush();
    }
    let e = t.elapsed();
    println!("seq: {:.0}/s", n as f64 / e.as_secs_f64());
    let t = Instant::now();
    for _ in 0..n {
        std::process::Command::new("/bin/true").status().unwrap();
    }
    println!("std: {:.0}/s", n as f64 / t.elapsed().as_secs_f64());
}
