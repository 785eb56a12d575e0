//! The process mailbox: `send` and `receive` within one process, a round trip between two
//! processes on two threads, and a selective receive that skips queued messages.

use std::hint::black_box;
use std::time::Duration;

use beamport::{process, Message, Pid};
use criterion::{criterion_group, criterion_main, Criterion};

/// How long any receive in a benchmark may wait.
const TIMEOUT: Duration = Duration::from_secs(10);

fn user<T: 'static>(msg: Message) -> T {
    match msg {
        Message::User(u) => u.downcast::<T>().unwrap_or_else(|_| panic!("unexpected message type")),
        other => panic!("unexpected message {other:?}"),
    }
}

fn send_receive(c: &mut Criterion) {
    let me = process::current();
    c.bench_function("mailbox/send+receive, same process", |b| {
        b.iter(|| {
            process::send(me.pid(), black_box(1u64));
            black_box(me.receive().unwrap());
        })
    });
}

fn ping_pong(c: &mut Criterion) {
    let me = process::current();
    // The echo process sends every (pid, n) back to pid, until it gets 0.
    let echo = process::spawn(|me| loop {
        let (from, n) = user::<(Pid, u64)>(me.receive().unwrap());
        process::send(from, n);
        if n == 0 {
            break;
        }
    });
    c.bench_function("mailbox/round trip between two processes", |b| {
        b.iter(|| {
            process::send(echo, (me.pid(), 1u64));
            black_box(me.receive_timeout(TIMEOUT).unwrap().expect("echo"));
        })
    });
    process::send(echo, (me.pid(), 0u64));
    me.receive_timeout(TIMEOUT).unwrap().expect("echo's last reply");
}

fn selective(c: &mut Criterion) {
    let me = process::current();
    for i in 0..100u32 {
        process::send(me.pid(), i);
    }
    c.bench_function("mailbox/selective receive past 100 queued", |b| {
        b.iter(|| {
            process::send(me.pid(), 7u64);
            let is_u64 = |m: &Message| matches!(m, Message::User(u) if u.downcast_ref::<u64>().is_some());
            black_box(me.receive_match(is_u64, Some(TIMEOUT)).unwrap().expect("queued"));
        })
    });
    assert_eq!(me.flush().unwrap().len(), 100);
}

criterion_group!(benches, send_receive, ping_pong, selective);
criterion_main!(benches);
