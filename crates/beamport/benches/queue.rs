//! The port command path: `Port::command` and the message API into a program that discards
//! its input (the caller's write, the output queue, busy waits), and a round trip through
//! `cat` (command, the reactor's read, delivery to the owner's mailbox, receive).

use std::hint::black_box;
use std::time::Duration;

use beamport::{process, Name, Opt, Port, Request};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// How long any receive in a benchmark may wait.
const TIMEOUT: Duration = Duration::from_secs(10);

fn command(c: &mut Criterion) {
    let me = process::current();
    let port = Port::open(Name::spawn("cat > /dev/null"), [Opt::Binary]).unwrap();
    let mut group = c.benchmark_group("command");
    for size in [32usize, 4 << 10, 64 << 10] {
        let data = Bytes::from(vec![b'x'; size]);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("Port::command {size} B"), |b| b.iter(|| port.command(data.clone()).unwrap()));
        group.bench_function(format!("Port::send {size} B"), |b| {
            b.iter(|| port.send(me.pid(), Request::command(data.clone())))
        });
    }
    group.finish();
    port.close().unwrap();
}

fn round_trip(c: &mut Criterion) {
    let me = process::current();
    let port = Port::open(Name::executable("/bin/cat"), [Opt::Binary]).unwrap();
    let data = Bytes::from(vec![b'p'; 32]);
    c.bench_function("round trip through cat, 32 B", |b| {
        b.iter(|| {
            port.command(data.clone()).unwrap();
            let mut got = 0;
            while got < data.len() {
                let msg = me.receive_timeout(TIMEOUT).unwrap().expect("cat's echo");
                got += black_box(msg.data().expect("data").bytes().len());
            }
        })
    });
    port.close().unwrap();
}

criterion_group!(benches, command, round_trip);
criterion_main!(benches);
