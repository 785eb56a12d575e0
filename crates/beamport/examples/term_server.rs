//! A document store for the BEAM: a port program that answers `{:call, ref, request}` with
//! `{:reply, ref, result}`, the shape a GenServer-style wrapper in Elixir expects. Documents
//! are any JSON-shaped terms (maps, lists, binaries, numbers, booleans, `nil`, atoms); they
//! are kept as JSON values, so a document comes back with binary keys and atoms as binaries.
//!
//! | request | reply |
//! |---|---|
//! | `{:put, "key", document}` | `:ok` |
//! | `{:get, "key"}` | `{:ok, document}` or `{:error, :not_found}` |
//! | `{:delete, "key"}` | `:ok` |
//! | `:keys` | `{:ok, ["key", …]}` |
//! | `{:to_json, "key"}` | `{:ok, "{\"json\": …}"}` or `{:error, :not_found}` |
//! | anything else | `{:error, {:bad_request, "why"}}` |
//!
//! A message not shaped `{:call, ref, request}` is answered `{:error, {:bad_message, "why"}}`.
//!
//! ```elixir
//! port = Port.open({:spawn_executable, "target/release/examples/term_server"}, [:binary, {:packet, 4}])
//! call = fn request ->
//!   ref = make_ref()
//!   send(port, {self(), {:command, :erlang.term_to_binary({:call, ref, request})}})
//!   receive do
//!     {^port, {:data, data}} -> {:reply, ^ref, result} = :erlang.binary_to_term(data); result
//!   end
//! end
//! :ok = call.({:put, "ada", %{name: "Ada", langs: [:erlang, "rust"]}})
//! {:ok, %{"name" => "Ada", "langs" => ["erlang", "rust"]}} = call.({:get, "ada"})
//! ```

use std::collections::BTreeMap;
use std::io;

use beamport::framing::{Framing, PacketSize};
use beamport::program::Channel;
use beamport::term::{self, Atom, Term, Tuple};
use serde::{Deserialize, Serialize};

/// What a caller may ask; `{:put, key, doc}` is `Put(key, doc)` (see `beamport::term`'s
/// table of shapes).
#[derive(Deserialize)]
enum Request {
    Put(String, serde_json::Value),
    Get(String),
    Delete(String),
    Keys,
    ToJson(String),
}

/// Why a request failed: `:not_found`, `{:bad_request, "why"}`.
#[derive(Serialize)]
enum Failure {
    NotFound,
    BadRequest(String),
}

fn main() -> io::Result<()> {
    let mut channel = Channel::stdio(Framing::Packet(PacketSize::Four))?;
    let mut docs: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    loop {
        let message = match channel.read_term() {
            Ok(Some(t)) => t,
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                channel.write_term(&bad_message(&e.to_string()))?;
                continue;
            }
            Err(e) => return Err(e),
        };
        let reply = match &message {
            Term::Tuple(t) if t.elements.len() == 3 && t.elements[0] == atom("call") => {
                let result = match term::from_term::<Request>(&t.elements[2]) {
                    Ok(request) => handle(&mut docs, request),
                    Err(e) => to_term(&Err::<(), _>(Failure::BadRequest(e.to_string()))),
                };
                Term::from(Tuple::from(vec![atom("reply"), t.elements[1].clone(), result]))
            }
            other => bad_message(&format!("expected {{:call, ref, request}}, got {}", term::iex(other))),
        };
        channel.write_term(&reply)?;
    }
}

fn handle(docs: &mut BTreeMap<String, serde_json::Value>, request: Request) -> Term {
    match request {
        Request::Put(key, doc) => {
            docs.insert(key, doc);
            to_term(&Ok::<(), Failure>(()))
        }
        Request::Get(key) => to_term(&docs.get(&key).ok_or(Failure::NotFound)),
        Request::Delete(key) => {
            docs.remove(&key);
            to_term(&Ok::<(), Failure>(()))
        }
        Request::Keys => to_term(&Ok::<_, Failure>(docs.keys().collect::<Vec<_>>())),
        Request::ToJson(key) => to_term(&docs.get(&key).map(|d| d.to_string()).ok_or(Failure::NotFound)),
    }
}

/// A reply as a term; JSON values and the types above always have one.
fn to_term<T: Serialize>(value: &T) -> Term {
    term::to_term(value).unwrap_or_else(|e| bad_message(&e.to_string()))
}

fn atom(name: &str) -> Term {
    Term::from(Atom::from(name))
}

/// `{:error, {:bad_message, "why"}}`.
fn bad_message(why: &str) -> Term {
    let why = Term::from(term::Binary::from(why.as_bytes()));
    Term::from(Tuple::from(vec![atom("error"), Term::from(Tuple::from(vec![atom("bad_message"), why]))]))
}
