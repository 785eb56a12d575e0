//! What `Port.info/1,2` reports about a port.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

use super::state::{Inner, Phase, State};
use super::{Port, PortError};
use crate::driver::Driver;
use crate::message::{Pid, Ref};

/// One item of [`Port::info_item`] (`Port.info/2`): every item `port_info/2` has for a spawn
/// port, but `:registered_name`, which comes with registered names. Items parse from their
/// atoms (`"locking".parse()`, `":os_pid".parse()`); an unknown one is `badarg`, as in
/// `port_info/2`.
///
/// # Examples
///
/// ```
/// use beamport::{process, Item, ItemValue, Name, Port};
/// let me = process::current();
/// let port = Port::open(Name::spawn("cat"), []).unwrap();
/// assert_eq!(port.info_item(Item::Connected), Some(ItemValue::Pid(me.pid())));
/// assert_eq!(port.info_item(Item::Links), Some(ItemValue::Pids(vec![me.pid()])));
/// assert_eq!(port.info_item(Item::Id), Some(ItemValue::Int(port.id())));
/// assert_eq!(port.info_item(Item::Output), Some(ItemValue::Int(0)));
/// assert_eq!(port.info_item(Item::Parallelism), Some(ItemValue::Bool(false)));
/// let locking: Item = ":locking".parse().unwrap(); // Port.info(port, :locking)
/// assert_eq!(format!("{:?}", port.info_item(locking).unwrap()), ":port_level");
/// assert!("bogus".parse::<Item>().is_err()); // badarg
/// port.close().unwrap();
/// assert_eq!(port.info_item(Item::Id), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Item {
    /// `:name`.
    Name,
    /// `:links`.
    Links,
    /// `:id`.
    Id,
    /// `:connected`.
    Connected,
    /// `:input`: bytes read from the program.
    Input,
    /// `:output`: bytes sent to the program.
    Output,
    /// `:os_pid`.
    OsPid,
    /// `:queue_size`: bytes waiting in the output queue.
    QueueSize,
    /// `:memory`: bytes the host holds for this port.
    Memory,
    /// `:parallelism`.
    Parallelism,
    /// `:monitored_by`: the processes monitoring the port.
    MonitoredBy,
    /// `:monitors`: what the port itself monitors. A driver may monitor processes; a spawn
    /// port monitors nothing, so this is always empty (`{:monitors, []}`, as OTP's).
    Monitors,
    /// `:locking`: `:port_level`, as OTP's spawn ports: each port has a lock of its own.
    Locking,
}

/// The items and their atoms, in `port_info/2`'s order.
const ITEMS: [(&str, Item); 13] = [
    ("name", Item::Name),
    ("links", Item::Links),
    ("id", Item::Id),
    ("connected", Item::Connected),
    ("input", Item::Input),
    ("output", Item::Output),
    ("os_pid", Item::OsPid),
    ("monitors", Item::Monitors),
    ("monitored_by", Item::MonitoredBy),
    ("memory", Item::Memory),
    ("queue_size", Item::QueueSize),
    ("parallelism", Item::Parallelism),
    ("locking", Item::Locking),
];

impl FromStr for Item {
    type Err = PortError;

    /// An item from its atom, with or without the colon: `"locking"`, `":monitored_by"`.
    ///
    /// OTP looks at the port first: on a closed port `port_info(port, :bogus)` is `undefined`.
    /// Here the item is checked on its own, so an unknown one is an error whatever the port.
    ///
    /// # Examples
    ///
    /// ```
    /// use beamport::{Item, PortError};
    /// assert_eq!(":locking".parse::<Item>().unwrap(), Item::Locking);
    /// let e = "bogus".parse::<Item>().unwrap_err();
    /// assert!(matches!(&e, PortError::Badarg(_)));
    /// assert_eq!(e.to_string(), "badarg: :bogus is not a port info item");
    /// ```
    ///
    /// # Errors
    ///
    /// [`PortError::Badarg`] for an atom that is not an item (`port_info/2`'s `badarg`), and
    /// for `:registered_name`, which comes with registered names.
    fn from_str(s: &str) -> Result<Item, PortError> {
        let name = s.trim().trim_start_matches(':');
        if name == "registered_name" {
            return Err(PortError::Badarg(
                ":registered_name comes with registered names, which beamport does not have".into(),
            ));
        }
        ITEMS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, item)| *item)
            .ok_or_else(|| PortError::Badarg(format!(":{name} is not a port info item")))
    }
}

/// `Port.info/1`: everything about an open port.
///
/// # Examples
///
/// ```
/// use beamport::{process, Name, Port};
/// let me = process::current();
/// let port = Port::open(Name::spawn("cat > /dev/null"), []).unwrap();
/// port.command("12345").unwrap();
/// let info = port.info().unwrap();
/// assert_eq!(info.name, "cat > /dev/null");
/// assert_eq!((info.connected, info.links), (me.pid(), vec![me.pid()]));
/// assert_eq!((info.id, info.input, info.output), (port.id(), 0, 5));
/// assert_eq!(info.os_pid, port.os_pid());
/// let iex = format!("{:?}", port.info().unwrap());
/// assert!(iex.starts_with("[name: 'cat > /dev/null', links: ["));
/// port.close().unwrap();
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// `:name`.
    pub name: String,
    /// `:links`.
    pub links: Vec<Pid>,
    /// `:id`.
    pub id: u64,
    /// `:connected`.
    pub connected: Pid,
    /// `:input`.
    pub input: u64,
    /// `:output`.
    pub output: u64,
    /// `:os_pid` (in the host's PID namespace).
    pub os_pid: Option<i32>,
}

impl fmt::Debug for PortInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[name: '{}', links: {:?}, id: {}, connected: {:?}, input: {}, output: {}, os_pid: {}]",
            self.name,
            self.links,
            self.id,
            self.connected,
            self.input,
            self.output,
            self.os_pid.map_or(":undefined".into(), |p| p.to_string())
        )
    }
}

/// The value of one [`Item`].
///
/// # Examples
///
/// ```
/// use beamport::{Item, ItemValue, Name, Port};
/// let port = Port::open(Name::spawn("cat"), []).unwrap();
/// let name = port.info_item(Item::Name).unwrap();
/// assert_eq!(format!("{name:?}"), "'cat'"); // as iex prints it
/// match port.info_item(Item::OsPid) {
///     Some(ItemValue::OsPid(Some(pid))) => assert!(pid > 0),
///     other => panic!("{other:?}"),
/// }
/// port.close().unwrap();
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ItemValue {
    /// A name.
    Name(String),
    /// Pids (`links`, `monitored_by`, `monitors`).
    Pids(Vec<Pid>),
    /// A pid (`connected`).
    Pid(Pid),
    /// A number (`id`, `input`, `output`, `queue_size`, `memory`).
    Int(u64),
    /// An OS pid, or `:undefined`.
    OsPid(Option<i32>),
    /// A flag (`parallelism`).
    Bool(bool),
    /// An atom (`locking`), printed with its colon: `:port_level`.
    Atom(&'static str),
}

impl fmt::Debug for ItemValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ItemValue::Name(n) => write!(f, "'{n}'"),
            ItemValue::Pids(p) => p.fmt(f),
            ItemValue::Pid(p) => p.fmt(f),
            ItemValue::Int(i) => i.fmt(f),
            ItemValue::OsPid(Some(p)) => p.fmt(f),
            ItemValue::OsPid(None) => f.write_str(":undefined"),
            ItemValue::Bool(b) => b.fmt(f),
            ItemValue::Atom(a) => write!(f, ":{a}"),
        }
    }
}

impl Port {
    /// `Port.info/1`: `None` once the port is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use beamport::{process, Name, Port};
    /// let me = process::current();
    /// let port = Port::open(Name::spawn("cat"), []).unwrap();
    /// port.command("abc").unwrap();
    /// me.receive_timeout(Duration::from_secs(5)).unwrap().expect("data");
    /// let info = port.info().unwrap();
    /// assert_eq!((info.name.as_str(), info.input, info.output), ("cat", 3, 3));
    /// assert_eq!(info.connected, me.pid());
    /// port.close().unwrap();
    /// assert_eq!(port.info(), None);
    /// ```
    pub fn info(&self) -> Option<PortInfo> {
        let st = self.started();
        if st.phase == Phase::Dead {
            return None;
        }
        let inner = self.inner();
        Some(PortInfo {
            name: inner.name.to_string(),
            links: st.life.links.clone(),
            id: inner.id,
            connected: st.life.owner,
            input: st.inp.received,
            output: st.out.sent,
            os_pid: st.driver.os_pid(),
        })
    }

    /// `Port.info/2`: one item, `None` once the port is closed.
    ///
    /// ```
    /// use beamport::{Item, ItemValue, Name, Port};
    /// let port = Port::open(Name::spawn("cat"), []).unwrap();
    /// assert_eq!(port.info_item(Item::Name), Some(ItemValue::Name("cat".into())));
    /// port.close().unwrap();
    /// assert_eq!(port.info_item(Item::Name), None);
    /// ```
    pub fn info_item(&self, item: Item) -> Option<ItemValue> {
        let st = if item == Item::OsPid { self.started() } else { self.lock() };
        if st.phase == Phase::Dead {
            return None;
        }
        let inner = self.inner();
        Some(match item {
            Item::Name => ItemValue::Name(inner.name.to_string()),
            Item::Links => ItemValue::Pids(st.life.links.clone()),
            Item::Id => ItemValue::Int(inner.id),
            Item::Connected => ItemValue::Pid(st.life.owner),
            Item::Input => ItemValue::Int(st.inp.received),
            Item::Output => ItemValue::Int(st.out.sent),
            Item::OsPid => ItemValue::OsPid(st.driver.os_pid()),
            Item::QueueSize => ItemValue::Int(st.out.queued as u64),
            Item::Memory => ItemValue::Int(self.memory(&st) as u64),
            Item::Parallelism => ItemValue::Bool(inner.settings.parallelism),
            Item::MonitoredBy => ItemValue::Pids(st.life.monitors.iter().map(|(_, p)| *p).collect()),
            Item::Monitors => ItemValue::Pids(Vec::new()),
            Item::Locking => ItemValue::Atom("port_level"),
        })
    }

    fn memory(&self, st: &State) -> usize {
        std::mem::size_of::<Inner>()
            + self.inner().name.len()
            + st.life.links.capacity() * std::mem::size_of::<Pid>()
            + st.life.monitors.capacity() * std::mem::size_of::<(Ref, Pid)>()
            + st.out.queue.capacity() * std::mem::size_of::<Bytes>()
            + st.inp.rbuf.capacity()
            + st.driver.memory()
    }
}
