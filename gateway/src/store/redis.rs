//! The Redis store: one Redis (`redis://`, `rediss://` for TLS) or a Redis
//! Cluster (`redis+cluster://host1:port,host2:port`, `rediss+cluster://`
//! for TLS), shared by every replica.
//!
//! Every call runs under `store.timeout_ms` and fails as
//! [`StoreError::Unavailable`]: the webhook answers 503 and the platform
//! retries. The single-node connection is a `ConnectionManager`, which
//! reconnects in the background once Redis answers again; the cluster
//! connection refreshes its slots and node connections by itself.
//!
//! Values written with `put` and dead letters are sealed with the keyring
//! (crypto.rs) under their full Redis key; dedupe marks are not (they hold
//! nothing). Key names come from the helpers in mod.rs, prefixed with
//! `store.key_prefix`.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ConnectionInfo, ErrorKind, IntoConnectionInfo, Pipeline, RedisError, RedisFuture,
    RedisResult, TlsCertificates, Value,
};
use secrecy::ExposeSecret;
use switchboard_model::ConversationKey;
use tracing::warn;

use super::crypto::{self, Keyring};
use super::{
    CHANNELS_KEY, CHANNELS_VERSION_FIELD, DEAD_LETTERS_KEY, DeadLetter, MAX_DEAD_LETTERS,
    StoreError, StoreResult, conversation_keys, is_dedupe_key, is_packed_kind, link_code_key,
    pending_link_key,
};
use crate::config::StoreSettings;

/// Dead letters are scanned in pages this long when erasing a conversation,
/// so memory stays bounded however large the letters are.
const ERASE_PAGE: isize = 200;

/// Where `store.url` points.
#[derive(Clone)]
pub enum RedisTarget {
    Single(ConnectionInfo),
    Cluster(Vec<ConnectionInfo>),
}

impl RedisTarget {
    fn is_tls(&self) -> bool {
        let tls = |info: &ConnectionInfo| matches!(info.addr, redis::ConnectionAddr::TcpTls { .. });
        match self {
            RedisTarget::Single(info) => tls(info),
            RedisTarget::Cluster(nodes) => nodes.iter().any(tls),
        }
    }
}

/// Why `store.url` is not a Redis URL this build understands. Never echoes
/// the URL (it may hold a password).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error(
        "is not a Redis URL; use redis://[user:password@]host:port/db, rediss://... for TLS, or redis+cluster://host1:port,host2:port for a Redis Cluster"
    )]
    Malformed,
    #[error("names no node; list at least one host:port after redis+cluster://")]
    NoClusterNode,
    #[error("selects a database, but a Redis Cluster only has database 0; drop the /db part")]
    ClusterDatabase,
}

/// Parses `store.url` (anything but `memory`).
pub fn parse_url(url: &str) -> Result<RedisTarget, UrlError> {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(UrlError::Malformed);
    };
    let node_scheme = match scheme {
        "redis" | "rediss" => {
            return url
                .into_connection_info()
                .map(RedisTarget::Single)
                .map_err(|_| UrlError::Malformed);
        }
        "redis+cluster" => "redis",
        "rediss+cluster" => "rediss",
        _ => return Err(UrlError::Malformed),
    };
    let (authority, tail) = match rest.find(['/', '?', '#']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let path = tail.split(['?', '#']).next().unwrap_or("");
    if !matches!(path, "" | "/" | "/0") {
        return Err(UrlError::ClusterDatabase);
    }
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let mut nodes = Vec::new();
    for host in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        let node = match userinfo {
            Some(userinfo) => format!("{node_scheme}://{userinfo}@{host}"),
            None => format!("{node_scheme}://{host}"),
        };
        nodes.push(
            node.as_str()
                .into_connection_info()
                .map_err(|_| UrlError::Malformed)?,
        );
    }
    if nodes.is_empty() {
        return Err(UrlError::NoClusterNode);
    }
    Ok(RedisTarget::Cluster(nodes))
}

/// `url` with any password replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{hosts}{tail}")
        }
        None => url.to_owned(),
    }
}

/// A connection to the configured Redis, single node or cluster. Cheap to
/// clone; clones share one multiplexed connection, so a blocking command
/// (`XREAD ... BLOCK`) on it stalls every other caller: use
/// [`RedisStore::dedicated_connection`] for those.
#[derive(Clone)]
pub enum RedisConnection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisConnection::Single(_) => f.write_str("RedisConnection::Single"),
            RedisConnection::Cluster(_) => f.write_str("RedisConnection::Cluster"),
        }
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConnection::Single(connection) => connection.req_packed_command(cmd),
            RedisConnection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Single(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            RedisConnection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Single(connection) => connection.get_db(),
            RedisConnection::Cluster(connection) => connection.get_db(),
        }
    }
}

/// How to open more connections like the first.
#[derive(Clone)]
enum Opener {
    Single(redis::Client, ConnectionManagerConfig),
    Cluster(redis::cluster::ClusterClient),
}

/// The Redis-backed store. Build it with [`RedisStore::connect`].
pub struct RedisStore {
    connection: RedisConnection,
    opener: Opener,
    timeout: Duration,
    prefix: String,
    keyring: Option<Arc<Keyring>>,
    /// The URL with its password masked.
    target: String,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("target", &self.target)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("keyring", &self.keyring)
            .finish_non_exhaustive()
    }
}

/// Two values read together ([`RedisStore::get_pair`]), opened.
pub type Pair = (Option<Vec<u8>>, Option<Vec<u8>>);

/// One write of [`RedisStore::commit`].
#[derive(Debug)]
pub enum Write<'a> {
    /// `SET` a logical key (sealed like [`RedisStore::put`]) with a TTL.
    Put {
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    },
    /// `XADD` an already sealed entry to a stream (full Redis key).
    Append { stream: &'a str, payload: &'a [u8] },
    /// `XDEL` one handled stream entry (full Redis key): a stream holds
    /// only what is not handled yet.
    Ack { stream: &'a str, id: &'a str },
}

/// Maps a client error: broken data is `Corrupt`, anything else (refused,
/// reset, timed out, cluster down, out of memory) is `Unavailable`, so the
/// caller answers 503 and the platform retries.
pub fn map_error(error: &RedisError) -> StoreError {
    let corrupt = matches!(error.kind(), ErrorKind::TypeError | ErrorKind::ParseError)
        || error.code() == Some("WRONGTYPE");
    if corrupt {
        StoreError::Corrupt(format!("redis: {error}"))
    } else {
        StoreError::Unavailable(format!("redis: {error}"))
    }
}

impl RedisStore {
    /// Connects to `settings.url` (any form but `memory`) and checks that
    /// Redis answers. Fails when it does not within `store.timeout_ms`.
    pub async fn connect(settings: &StoreSettings) -> StoreResult<RedisStore> {
        let target = parse_url(&settings.url)
            .map_err(|e| StoreError::Unavailable(format!("store.url {}", e)))?;
        let redacted = redact_url(&settings.url);
        let timeout = Duration::from_millis(settings.timeout_ms.max(1));
        let certificates = match &settings.tls_ca_file {
            Some(path) => Some(read_ca(path)?),
            None => None,
        };
        if certificates.is_some() && !target.is_tls() {
            return Err(StoreError::Unavailable(
                "store.tls_ca_file is set but store.url is not rediss:// or rediss+cluster://"
                    .to_owned(),
            ));
        }
        let password = settings
            .password
            .as_ref()
            .map(|p| p.expose_secret().to_owned());
        let unreachable = |error: &dyn fmt::Display| {
            StoreError::Unavailable(format!(
                "cannot reach Redis at {redacted} within {timeout:?}: {error}"
            ))
        };
        let opener = match target {
            RedisTarget::Single(mut info) => {
                if let Some(password) = password {
                    info.redis.password = Some(password);
                }
                let client = match certificates {
                    Some(certificates) => redis::Client::build_with_tls(info, certificates),
                    None => redis::Client::open(info),
                }
                .map_err(|e| unreachable(&e))?;
                // Short reconnect bursts: the operation timeout, not the
                // backoff, decides how long a caller waits, and the next call
                // starts a fresh attempt.
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(timeout)
                    .set_number_of_retries(2)
                    .set_factor(50)
                    .set_max_delay(500);
                Opener::Single(client, config)
            }
            RedisTarget::Cluster(nodes) => {
                let mut builder = ClusterClientBuilder::new(nodes)
                    .connection_timeout(timeout)
                    .retries(4)
                    .min_retry_wait(20)
                    .max_retry_wait(500);
                if let Some(password) = password {
                    builder = builder.password(password);
                }
                if let Some(certificates) = certificates {
                    builder = builder.certs(certificates);
                }
                Opener::Cluster(builder.build().map_err(|e| unreachable(&e))?)
            }
        };
        let connection = tokio::time::timeout(timeout, open(&opener))
            .await
            .map_err(|_| unreachable(&"no answer"))?
            .map_err(|e| unreachable(&e))?;
        if settings.encryption.is_none() {
            warn!(
                target = %redacted,
                "store.allow_plaintext is on: conversation state and link codes are stored in Redis unencrypted"
            );
        }
        let store = RedisStore {
            connection,
            opener,
            timeout,
            prefix: settings.key_prefix.clone(),
            keyring: settings.encryption.clone(),
            target: redacted,
        };
        store.ping().await?;
        Ok(store)
    }

    /// The shared connection (multiplexed; see [`RedisConnection`]).
    pub fn connection(&self) -> RedisConnection {
        self.connection.clone()
    }

    /// A new connection of its own, for blocking commands.
    pub async fn dedicated_connection(&self) -> StoreResult<RedisConnection> {
        match tokio::time::timeout(self.timeout, open(&self.opener)).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(error)) => Err(map_error(&error)),
            Err(_) => Err(self.timed_out("connect")),
        }
    }

    /// `store.timeout_ms`: the longest any one Redis call may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The Redis key for a logical key from the helpers in mod.rs
    /// (`store.key_prefix` + `sb:v1:...`).
    pub fn key(&self, logical: &str) -> String {
        format!("{}{logical}", self.prefix)
    }

    /// True when values are sealed (encryption keys configured).
    pub fn encrypts(&self) -> bool {
        self.keyring.is_some()
    }

    /// Seals `plaintext` for storage under the Redis key `redis_key` (as
    /// returned by [`RedisStore::key`]); the bytes unchanged when running
    /// with `allow_plaintext`. An empty value (a mark: done, sent, whose
    /// presence is all it says) stays empty: sealing nothing would cost a
    /// nonce and 35 bytes per mark and hide nothing.
    pub fn seal(&self, redis_key: &str, plaintext: &[u8]) -> StoreResult<Vec<u8>> {
        match &self.keyring {
            Some(_) if plaintext.is_empty() => Ok(Vec::new()),
            Some(keyring) => keyring.seal(redis_key, plaintext),
            None => Ok(plaintext.to_vec()),
        }
    }

    /// Opens a value read from `redis_key`.
    pub fn open(&self, redis_key: &str, stored: &[u8]) -> StoreResult<Vec<u8>> {
        match &self.keyring {
            // A mark (see `seal`); sealed values are never empty.
            Some(_) if stored.is_empty() => Ok(Vec::new()),
            Some(keyring) => keyring.open(redis_key, stored),
            None if crypto::is_sealed(stored) => Err(StoreError::Corrupt(format!(
                "the value at {redis_key} is sealed with key id '{}', but no \
                 store.encryption_keys are configured",
                crypto::sealed_key_id(stored).unwrap_or_default()
            ))),
            None => Ok(stored.to_vec()),
        }
    }

    /// As [`RedisStore::seal`], packed first when `redis_key` names a
    /// kind of value that is packed (queue entries).
    pub fn seal_packed(&self, redis_key: &str, plaintext: &[u8]) -> StoreResult<Vec<u8>> {
        match pack(redis_key, plaintext) {
            Some(packed) => self.seal(redis_key, &packed),
            None => self.seal(redis_key, plaintext),
        }
    }

    /// Opens what [`RedisStore::seal_packed`] sealed (or `seal`, before
    /// packing).
    pub fn open_packed(&self, redis_key: &str, stored: &[u8]) -> StoreResult<Vec<u8>> {
        self.open(redis_key, stored)
            .and_then(|plain| unpack(redis_key, plain))
    }

    /// Runs one Redis call under the store timeout, mapping its errors.
    pub async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = RedisResult<T>>,
    ) -> StoreResult<T> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(map_error(&error)),
            Err(_) => Err(self.timed_out(what)),
        }
    }

    fn timed_out(&self, what: &str) -> StoreError {
        StoreError::Unavailable(format!(
            "redis at {} did not answer {what} within {:?}",
            self.target, self.timeout
        ))
    }

    pub async fn ping(&self) -> StoreResult<()> {
        let mut connection = self.connection();
        let answer: String = self
            .call("PING", redis::cmd("PING").query_async(&mut connection))
            .await?;
        if answer == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Corrupt(format!(
                "redis answered PING with '{answer}'"
            )))
        }
    }

    pub async fn first_sighting(&self, key: &str, ttl: Duration) -> StoreResult<bool> {
        let mut connection = self.connection();
        let set: Option<String> = self
            .call(
                "SET NX",
                redis::cmd("SET")
                    .arg(self.key(key))
                    .arg("")
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms(ttl))
                    .query_async(&mut connection),
            )
            .await?;
        Ok(set.is_some())
    }

    /// `SET NX PX` starts the window only for the first increment, and
    /// MULTI keeps the pair together, so the counter never outlives it.
    pub async fn count_in_window(&self, key: &str, window: Duration) -> StoreResult<u64> {
        let redis_key = self.key(key);
        let mut pipeline = redis::pipe();
        pipeline
            .atomic()
            .cmd("SET")
            .arg(&redis_key)
            .arg(0)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms(window))
            .ignore()
            .cmd("INCR")
            .arg(&redis_key);
        let mut connection = self.connection();
        let (count,): (u64,) = self
            .call("INCR", pipeline.query_async(&mut connection))
            .await?;
        Ok(count)
    }

    pub async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let redis_key = self.key(key);
        let mut connection = self.connection();
        let stored: Option<Vec<u8>> = self
            .call(
                "GET",
                redis::cmd("GET")
                    .arg(&redis_key)
                    .query_async(&mut connection),
            )
            .await?;
        self.opened(key, &redis_key, stored)
    }

    pub async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> StoreResult<()> {
        let redis_key = self.key(key);
        let stored = self.stored(key, &redis_key, value)?;
        let mut connection = self.connection();
        self.call(
            "SET",
            redis::cmd("SET")
                .arg(&redis_key)
                .arg(stored)
                .arg("PX")
                .arg(ttl_ms(ttl))
                .query_async::<()>(&mut connection),
        )
        .await
    }

    /// True on a Redis Cluster, where one round trip cannot span slots.
    pub fn is_cluster(&self) -> bool {
        matches!(self.connection, RedisConnection::Cluster(_))
    }

    /// Two [`RedisStore::get`]s in one round trip on a single node; one
    /// after the other on a cluster (the keys live in different slots).
    pub async fn get_pair(&self, first: &str, second: &str) -> StoreResult<Pair> {
        if self.is_cluster() {
            return Ok((self.get(first).await?, self.get(second).await?));
        }
        let mut pipeline = redis::pipe();
        for read in self.pair_reads(first, second) {
            pipeline.add_command(read);
        }
        let mut connection = self.connection();
        let replies: Vec<Value> = self
            .call("GET", connection.req_packed_commands(&pipeline, 0, 2))
            .await?;
        self.read_pair(first, second, replies)
    }

    /// [`RedisStore::get_pair`]'s two commands, to send behind others
    /// (`commit_then`); [`RedisStore::read_pair`] reads their replies.
    pub fn pair_reads(&self, first: &str, second: &str) -> Vec<Cmd> {
        [first, second]
            .into_iter()
            .map(|logical| {
                let mut get = redis::cmd("GET");
                get.arg(self.key(logical));
                get
            })
            .collect()
    }

    /// The values in the replies to [`RedisStore::pair_reads`], opened.
    pub fn read_pair(&self, first: &str, second: &str, replies: Vec<Value>) -> StoreResult<Pair> {
        let [a, b]: [Value; 2] = replies.try_into().map_err(|_| {
            StoreError::Unavailable("redis: two reads answered with the wrong count".to_owned())
        })?;
        let value = |reply: Value| -> StoreResult<Option<Vec<u8>>> {
            reply
                .extract_error()
                .and_then(redis::from_owned_redis_value)
                .map_err(|error| map_error(&error))
        };
        Ok((
            self.opened(first, &self.key(first), value(a)?)?,
            self.opened(second, &self.key(second), value(b)?)?,
        ))
    }

    /// A value read at `redis_key` (the key of `logical`), opened.
    pub(crate) fn opened(
        &self,
        logical: &str,
        redis_key: &str,
        stored: Option<Vec<u8>>,
    ) -> StoreResult<Option<Vec<u8>>> {
        match stored {
            // A mark from `first_sighting`: sealed values are never empty.
            Some(stored) if stored.is_empty() || is_dedupe_key(logical) => Ok(Some(stored)),
            Some(stored) => self
                .open(redis_key, &stored)
                .and_then(|plain| unpack(logical, plain))
                .map(Some),
            None => Ok(None),
        }
    }

    /// What `value` is stored as under `redis_key` (the key of `logical`):
    /// dedupe marks as they are, conversation states packed, everything
    /// sealed.
    fn stored(&self, logical: &str, redis_key: &str, value: &[u8]) -> StoreResult<Vec<u8>> {
        if is_dedupe_key(logical) {
            return Ok(value.to_vec());
        }
        match pack(logical, value) {
            Some(packed) => self.seal(redis_key, &packed),
            None => self.seal(redis_key, value),
        }
    }

    /// Carries out `writes` in order. On a single node they are one
    /// MULTI/EXEC (a single write goes alone): all or nothing, one round
    /// trip, so a handled event's state, its replies, its done mark and its
    /// acknowledgement cannot part (and a write refused for lack of memory
    /// aborts them all). On a cluster they span slots, so they run one by
    /// one in the given order, which keeps the guarantees a crash between
    /// them needs: whatever is done before the acknowledgement is redone
    /// idempotently.
    pub async fn commit(&self, writes: &[Write<'_>]) -> StoreResult<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let commands = self.write_commands(writes)?;
        let mut connection = self.connection();
        // One command is atomic by itself: MULTI/EXEC around it would only
        // cost Redis two more commands (and the AOF two more records).
        if self.is_cluster() || commands.len() == 1 {
            for command in &commands {
                self.call("write", command.query_async::<()>(&mut connection))
                    .await?;
            }
            return Ok(());
        }
        let mut pipeline = redis::pipe();
        pipeline.atomic();
        for command in commands {
            pipeline.add_command(command).ignore();
        }
        self.call("MULTI", pipeline.query_async::<()>(&mut connection))
            .await
    }

    /// [`RedisStore::commit`] with more commands behind it in the same
    /// round trip, on a single node: Redis runs one connection's commands
    /// in order, so `then` sees the writes. Gives the commit's result and,
    /// when it went through, `then`'s replies as Redis sent them (error
    /// replies included). On a cluster, or with nothing to write, `then`
    /// is not sent: the caller asks on its own.
    pub async fn commit_then(
        &self,
        writes: &[Write<'_>],
        then: Vec<Cmd>,
    ) -> (StoreResult<()>, Option<Vec<Value>>) {
        if self.is_cluster() || writes.is_empty() {
            return (self.commit(writes).await, None);
        }
        let commands = match self.write_commands(writes) {
            Ok(commands) => commands,
            Err(error) => return (Err(error), None),
        };
        let mut pipeline = redis::pipe();
        let transaction = commands.len() > 1;
        if transaction {
            pipeline.cmd("MULTI");
        }
        for command in commands {
            pipeline.add_command(command);
        }
        if transaction {
            pipeline.cmd("EXEC");
        }
        let replies_to_then = then.len();
        for command in then {
            pipeline.add_command(command);
        }
        let mut connection = self.connection();
        let count = pipeline.len();
        let replies = self
            .call("MULTI", connection.req_packed_commands(&pipeline, 0, count))
            .await;
        let mut replies = match replies {
            Ok(replies) if replies.len() == count => replies,
            Ok(_) => {
                return (
                    Err(StoreError::Unavailable(
                        "redis: a pipeline answered with the wrong number of replies".to_owned(),
                    )),
                    None,
                );
            }
            Err(error) => return (Err(error), None),
        };
        let then = replies.split_off(count - replies_to_then);
        // Every write's reply (MULTI's, the QUEUED ones and EXEC's, or the
        // single write's): the first error fails the commit, as `commit`
        // fails on it.
        let committed = replies.into_iter().try_for_each(|reply| match reply {
            Value::Array(results) => results
                .into_iter()
                .try_for_each(|result| result.extract_error().map(drop)),
            Value::Nil if transaction => Err(RedisError::from((
                ErrorKind::ExecAbortError,
                "transaction aborted",
            ))),
            reply => reply.extract_error().map(drop),
        });
        match committed {
            Ok(()) => (Ok(()), Some(then)),
            Err(error) => (Err(map_error(&error)), None),
        }
    }

    /// The commands for `writes`: values sealed (and states packed) as
    /// [`RedisStore::put`] stores them.
    fn write_commands(&self, writes: &[Write<'_>]) -> StoreResult<Vec<Cmd>> {
        let mut commands: Vec<Cmd> = Vec::with_capacity(writes.len());
        for write in writes {
            match write {
                Write::Put { key, value, ttl } => {
                    let redis_key = self.key(key);
                    let stored = self.stored(key, &redis_key, value)?;
                    let mut set = redis::cmd("SET");
                    set.arg(&redis_key).arg(stored).arg("PX").arg(ttl_ms(*ttl));
                    commands.push(set);
                }
                Write::Append { stream, payload } => {
                    let mut add = redis::cmd("XADD");
                    add.arg(*stream).arg("*").arg("d").arg(*payload);
                    commands.push(add);
                }
                Write::Ack { stream, id } => {
                    let mut delete = redis::cmd("XDEL");
                    delete.arg(*stream).arg(*id);
                    commands.push(delete);
                }
            }
        }
        Ok(commands)
    }

    pub async fn delete(&self, key: &str) -> StoreResult<()> {
        let mut connection = self.connection();
        self.call(
            "DEL",
            redis::cmd("DEL")
                .arg(self.key(key))
                .query_async::<()>(&mut connection),
        )
        .await
    }

    pub async fn push_dead_letter(&self, letter: &DeadLetter) -> StoreResult<()> {
        let list = self.key(DEAD_LETTERS_KEY);
        let json = serde_json::to_vec(letter)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode a dead letter: {e}")))?;
        let sealed = self.seal(&list, &json)?;
        let mut pipeline = redis::pipe();
        pipeline
            .atomic()
            .cmd("LPUSH")
            .arg(&list)
            .arg(sealed)
            .ignore()
            .cmd("LTRIM")
            .arg(&list)
            .arg(0)
            .arg(MAX_DEAD_LETTERS - 1)
            .ignore();
        let mut connection = self.connection();
        self.call("LPUSH", pipeline.query_async::<()>(&mut connection))
            .await
    }

    /// Newest first. Letters that cannot be opened (a retired key) are
    /// skipped with a warning rather than hiding all the others.
    pub async fn dead_letters(&self, limit: usize) -> StoreResult<Vec<DeadLetter>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let list = self.key(DEAD_LETTERS_KEY);
        let stop = isize::try_from(limit).unwrap_or(isize::MAX) - 1;
        let raw = self.range(&list, 0, stop).await?;
        Ok(raw
            .iter()
            .filter_map(|stored| self.read_letter(&list, stored))
            .collect())
    }

    fn read_letter(&self, list: &str, stored: &[u8]) -> Option<DeadLetter> {
        let opened = self.open(list, stored).and_then(|json| {
            serde_json::from_slice::<DeadLetter>(&json)
                .map_err(|e| StoreError::Corrupt(format!("a dead letter is not JSON: {e}")))
        });
        match opened {
            Ok(letter) => Some(letter),
            Err(error) => {
                warn!(error = %error, "skipping a dead letter that cannot be read");
                None
            }
        }
    }

    async fn range(&self, list: &str, start: isize, stop: isize) -> StoreResult<Vec<Vec<u8>>> {
        let mut connection = self.connection();
        self.call(
            "LRANGE",
            redis::cmd("LRANGE")
                .arg(list)
                .arg(start)
                .arg(stop)
                .query_async(&mut connection),
        )
        .await
    }

    pub async fn dead_letter_count(&self) -> StoreResult<usize> {
        let mut connection = self.connection();
        self.call(
            "LLEN",
            redis::cmd("LLEN")
                .arg(self.key(DEAD_LETTERS_KEY))
                .query_async(&mut connection),
        )
        .await
    }

    /// What a channel record is sealed under: the hash and the field, so a
    /// record cannot be moved to another channel id unnoticed.
    fn channel_seal_key(&self, id: &str) -> String {
        format!("{}#{id}", self.key(CHANNELS_KEY))
    }

    pub async fn channel_records(&self) -> StoreResult<(u64, Vec<(String, Vec<u8>)>)> {
        let mut connection = self.connection();
        let fields: Vec<(String, Vec<u8>)> = self
            .call(
                "HGETALL",
                redis::cmd("HGETALL")
                    .arg(self.key(CHANNELS_KEY))
                    .query_async(&mut connection),
            )
            .await?;
        let mut version = 0;
        let mut records = Vec::with_capacity(fields.len());
        for (field, stored) in fields {
            if field == CHANNELS_VERSION_FIELD {
                version = String::from_utf8_lossy(&stored).parse().unwrap_or(0);
                continue;
            }
            match self.open(&self.channel_seal_key(&field), &stored) {
                Ok(record) => records.push((field, record)),
                // One unreadable record (a retired key) must not hide the rest.
                Err(error) => {
                    warn!(channel = %field, error = %error, "skipping a stored channel that cannot be read");
                }
            }
        }
        records.sort_by(|a, b| a.0.cmp(&b.0));
        Ok((version, records))
    }

    pub async fn channels_version(&self) -> StoreResult<u64> {
        let mut connection = self.connection();
        let version: Option<u64> = self
            .call(
                "HGET",
                redis::cmd("HGET")
                    .arg(self.key(CHANNELS_KEY))
                    .arg(CHANNELS_VERSION_FIELD)
                    .query_async(&mut connection),
            )
            .await?;
        Ok(version.unwrap_or(0))
    }

    pub async fn put_channel_record(&self, id: &str, record: &[u8]) -> StoreResult<()> {
        let sealed = self.seal(&self.channel_seal_key(id), record)?;
        let key = self.key(CHANNELS_KEY);
        let mut pipeline = redis::pipe();
        pipeline
            .atomic()
            .cmd("HSET")
            .arg(&key)
            .arg(id)
            .arg(sealed)
            .ignore()
            .cmd("HINCRBY")
            .arg(&key)
            .arg(CHANNELS_VERSION_FIELD)
            .arg(1)
            .ignore();
        let mut connection = self.connection();
        self.call("HSET", pipeline.query_async::<()>(&mut connection))
            .await
    }

    pub async fn delete_channel_record(&self, id: &str) -> StoreResult<bool> {
        let key = self.key(CHANNELS_KEY);
        let mut pipeline = redis::pipe();
        pipeline
            .atomic()
            .cmd("HDEL")
            .arg(&key)
            .arg(id)
            .cmd("HINCRBY")
            .arg(&key)
            .arg(CHANNELS_VERSION_FIELD)
            .arg(1)
            .ignore();
        let mut connection = self.connection();
        let (removed,): (u64,) = self
            .call("HDEL", pipeline.query_async(&mut connection))
            .await?;
        Ok(removed > 0)
    }

    pub async fn erase_conversation(&self, conversation: &ConversationKey) -> StoreResult<()> {
        let account = match self.get(&pending_link_key(conversation)).await {
            Ok(account) => account,
            // Unreadable is no reason to keep it: it is deleted below.
            Err(StoreError::Corrupt(_)) => None,
            Err(error) => return Err(error),
        };
        let mut connection = self.connection();
        // One DEL: the `{conversation}` hash tag puts these in one slot.
        let mut del = redis::cmd("DEL");
        for key in conversation_keys(conversation) {
            del.arg(self.key(&key));
        }
        self.call("DEL", del.query_async::<()>(&mut connection))
            .await?;
        if let Some(account) = account {
            self.delete(&link_code_key(&String::from_utf8_lossy(&account)))
                .await?;
        }
        self.erase_dead_letters(&conversation.to_string()).await
    }

    async fn erase_dead_letters(&self, conversation: &str) -> StoreResult<()> {
        let list = self.key(DEAD_LETTERS_KEY);
        let mut start: isize = 0;
        loop {
            let page = self.range(&list, start, start + ERASE_PAGE - 1).await?;
            let mut removed: isize = 0;
            for stored in &page {
                let names_it = self
                    .read_letter(&list, stored)
                    .is_some_and(|letter| letter.conversation.as_deref() == Some(conversation));
                if names_it {
                    let mut connection = self.connection();
                    let count: isize = self
                        .call(
                            "LREM",
                            redis::cmd("LREM")
                                .arg(&list)
                                .arg(1)
                                .arg(stored.as_slice())
                                .query_async(&mut connection),
                        )
                        .await?;
                    removed += count;
                }
            }
            if page.len() < usize::try_from(ERASE_PAGE).unwrap_or(usize::MAX) {
                return Ok(());
            }
            // Removals shift later letters left; new ones only push at the
            // head, so at worst a letter is read twice, never skipped.
            start += ERASE_PAGE - removed;
        }
    }
}

async fn open(opener: &Opener) -> RedisResult<RedisConnection> {
    match opener {
        Opener::Single(client, config) => {
            ConnectionManager::new_with_config(client.clone(), config.clone())
                .await
                .map(RedisConnection::Single)
        }
        Opener::Cluster(client) => client
            .get_async_connection()
            .await
            .map(RedisConnection::Cluster),
    }
}

fn read_ca(path: &Path) -> StoreResult<TlsCertificates> {
    let pem = std::fs::read(path).map_err(|e| {
        StoreError::Unavailable(format!(
            "store.tls_ca_file: cannot read {}: {e}",
            path.display()
        ))
    })?;
    Ok(TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    })
}

/// Conversation states and queue entries are JSON that LZ4 shrinks (states
/// about threefold), and most of what Redis holds and its append-only file
/// writes; sealed bytes do not compress, so they are packed before sealing
/// (`is_packed_kind`). A packed value starts with this byte, which JSON
/// never does, so values written before packing and short ones kept plain
/// read as they are.
const PACKED: u8 = 0;
/// States shorter than this are kept plain: LZ4 gains little on them.
const PACK_FROM: usize = 256;
/// The most a packed state may say it unpacks to: a guard against a forged
/// length (states are capped far below, `abuse.max_state_bytes`).
const MAX_UNPACKED: usize = 16 << 20;

/// `value` packed when it is of a kind packed and packing makes it smaller.
fn pack(logical: &str, value: &[u8]) -> Option<Vec<u8>> {
    if !is_packed_kind(logical) || value.len() < PACK_FROM {
        return None;
    }
    let compressed = lz4_flex::compress_prepend_size(value);
    if compressed.len() + 1 >= value.len() {
        return None;
    }
    let mut packed = Vec::with_capacity(compressed.len() + 1);
    packed.push(PACKED);
    packed.extend_from_slice(&compressed);
    Some(packed)
}

/// A value as it was before [`pack`]; other values as they are.
fn unpack(logical: &str, plain: Vec<u8>) -> StoreResult<Vec<u8>> {
    if !is_packed_kind(logical) || plain.first() != Some(&PACKED) {
        return Ok(plain);
    }
    let body = &plain[1..];
    let claimed = body
        .get(..4)
        .and_then(|len| <[u8; 4]>::try_from(len).ok())
        .map(|len| u32::from_le_bytes(len) as usize);
    match claimed {
        Some(len) if len <= MAX_UNPACKED => lz4_flex::decompress_size_prepended(body)
            .map_err(|e| StoreError::Corrupt(format!("a packed state cannot be unpacked: {e}"))),
        _ => Err(StoreError::Corrupt(
            "a packed state has a missing or impossible length".to_owned(),
        )),
    }
}

/// Redis wants a positive millisecond count.
fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_node_urls_parse_with_database_and_tls() {
        let RedisTarget::Single(info) = parse_url("redis://127.0.0.1:6380/2").unwrap() else {
            panic!("single node expected");
        };
        assert_eq!(info.redis.db, 2);
        assert!(
            parse_url("rediss://cache.example.com:6380")
                .unwrap()
                .is_tls()
        );
        assert!(!parse_url("redis://localhost").unwrap().is_tls());
    }

    #[test]
    fn cluster_urls_list_every_node_and_share_credentials() {
        let RedisTarget::Cluster(nodes) =
            parse_url("redis+cluster://user:pw@10.0.0.1:7000,10.0.0.2:7001").unwrap()
        else {
            panic!("cluster expected");
        };
        assert_eq!(nodes.len(), 2);
        assert!(
            nodes
                .iter()
                .all(|n| n.redis.password.as_deref() == Some("pw"))
        );
        assert!(parse_url("rediss+cluster://a:1,b:2").unwrap().is_tls());
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        assert_eq!(parse_url("mongodb://x").err(), Some(UrlError::Malformed));
        assert_eq!(
            parse_url("redis+cluster://").err(),
            Some(UrlError::NoClusterNode)
        );
        assert_eq!(
            parse_url("redis+cluster://a:1,b:2/3").err(),
            Some(UrlError::ClusterDatabase)
        );
        assert_eq!(parse_url("localhost:6379").err(), Some(UrlError::Malformed));
    }

    #[test]
    fn redacted_urls_hide_the_password_only() {
        assert_eq!(
            redact_url("redis://user:hunter2@host:6379/0"),
            "redis://user:***@host:6379/0"
        );
        assert_eq!(
            redact_url("redis+cluster://:hunter2@a:1,b:2"),
            "redis+cluster://:***@a:1,b:2"
        );
        assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
    }

    #[test]
    fn ttls_round_up_to_a_millisecond() {
        assert_eq!(ttl_ms(Duration::ZERO), 1);
        assert_eq!(ttl_ms(Duration::from_secs(2)), 2000);
    }

    /// A conversation state as the assistant writes it: a transcript of
    /// similar lines.
    pub(super) fn state_json(lines: usize) -> Vec<u8> {
        let transcript: Vec<String> = (0..lines)
            .map(|n| {
                format!(r#"{{"from":"customer","text":"where is order 1002{n}","at":17000000{n}}}"#)
            })
            .collect();
        format!(
            r#"{{"v":1,"intent":null,"transcript":[{}]}}"#,
            transcript.join(",")
        )
        .into_bytes()
    }

    #[test]
    fn states_are_packed_smaller_and_unpack_unchanged() {
        let key = "sb:v1:state:{telegram:tg:1}";
        let state = state_json(20);
        let packed = pack(key, &state).expect("a long state is packed");
        assert_eq!(packed[0], PACKED);
        assert!(
            packed.len() * 2 < state.len(),
            "{} of {}",
            packed.len(),
            state.len()
        );
        assert_eq!(unpack(key, packed).unwrap(), state);
        // Short states, other values and states written before packing stay
        // as they are.
        assert!(pack(key, br#"{"v":1}"#).is_none());
        assert!(pack("sb:v1:otp:acct-1", &state).is_none());
        assert_eq!(unpack(key, state.clone()).unwrap(), state);
        let not_a_state = vec![PACKED, 1, 2, 3];
        assert_eq!(
            unpack("sb:v1:otp:acct-1", not_a_state.clone()).unwrap(),
            not_a_state
        );
    }

    #[test]
    fn a_packed_state_with_a_forged_or_broken_length_is_corrupt_not_a_huge_allocation() {
        let key = "sb:v1:state:{telegram:tg:1}";
        let mut forged = vec![PACKED];
        forged.extend_from_slice(&u32::MAX.to_le_bytes());
        forged.extend_from_slice(b"tiny");
        assert!(matches!(unpack(key, forged), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            unpack(key, vec![PACKED, 1]),
            Err(StoreError::Corrupt(_))
        ));
        let mut broken = pack(key, &state_json(20)).unwrap();
        broken.truncate(broken.len() / 2);
        assert!(matches!(unpack(key, broken), Err(StoreError::Corrupt(_))));
    }
}

#[cfg(test)]
mod live {
    //! Against a private redis-server: TTLs, sealing on the wire, erasure,
    //! outages. The cross-backend behaviour is in mod.rs's conformance.
    use std::time::Instant;

    use super::*;
    use crate::store::test_support::*;
    use crate::store::{Store, dedupe_key, state_key};
    use switchboard_model::{ChannelId, ChatId, Platform};
    use switchboard_testkit::RedisServer;

    /// Every key in the server with its raw contents, whatever the type.
    fn dump(server: &RedisServer) -> Vec<(String, i64, Vec<Vec<u8>>)> {
        let mut connection = server.connection();
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut connection).unwrap();
        keys.into_iter()
            .map(|key| {
                let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut connection).unwrap();
                let kind: String = redis::cmd("TYPE").arg(&key).query(&mut connection).unwrap();
                let values: Vec<Vec<u8>> = match kind.as_str() {
                    "string" => vec![redis::cmd("GET").arg(&key).query(&mut connection).unwrap()],
                    "list" => redis::cmd("LRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(-1)
                        .query(&mut connection)
                        .unwrap(),
                    other => panic!("unexpected {other} at {key}"),
                };
                (key, ttl, values)
            })
            .collect()
    }

    fn contains(haystack: &[u8], needle: &str) -> bool {
        haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }

    async fn fill(store: &Store, conv: &ConversationKey, marker: &str) {
        let ttl = Duration::from_secs(600);
        store
            .first_sighting(&dedupe_key("messenger", "ms", "m_1"), ttl)
            .await
            .unwrap();
        let state = format!("{{\"last\":\"{marker}\",\"order\":\"10023\"}}");
        store
            .put(&state_key(conv), state.into_bytes(), ttl)
            .await
            .unwrap();
        store
            .put(&pending_link_key(conv), b"acct-9".to_vec(), ttl)
            .await
            .unwrap();
        let record = format!("{{\"conversation\":\"{conv}\",\"code_hash\":\"{marker}\"}}");
        store
            .put(&link_code_key("acct-9"), record.into_bytes(), ttl)
            .await
            .unwrap();
        let mut named = letter("d-named", Some(conv.to_string()));
        named.payload =
            Some(serde_json::json!({ "text": marker, "conversation": conv.to_string() }));
        store.push_dead_letter(named).await.unwrap();
        store
            .push_dead_letter(letter("d-other", None))
            .await
            .unwrap();
    }

    fn messenger_conversation(psid: &str) -> ConversationKey {
        ConversationKey::new(
            Platform::Messenger,
            ChannelId::new("ms").unwrap(),
            ChatId::Str(psid.to_owned()),
        )
    }

    #[tokio::test]
    async fn nothing_but_dead_letters_lives_forever() {
        let server = RedisServer::start();
        let store = Store::Redis(redis_store(server.url(), "", &[K1]).await);
        fill(&store, &conversation(5), "hello").await;
        let keys = dump(&server);
        assert!(keys.len() >= 5, "{keys:?}");
        for (key, ttl, _) in keys {
            if key == DEAD_LETTERS_KEY {
                assert_eq!(ttl, -1, "dead letters are kept until cleared");
            } else {
                assert!(ttl > 0, "{key} has no TTL ({ttl})");
            }
        }
    }

    #[tokio::test]
    async fn states_are_stored_packed_and_sealed_and_unpacked_ones_still_read() {
        let server = RedisServer::start();
        let store = redis_store(server.url(), "", &[K1]).await;
        let conv = conversation(6);
        let key = state_key(&conv);
        let state = tests::state_json(20);
        let ttl = Duration::from_secs(60);
        store.put(&key, &state, ttl).await.unwrap();
        let mut connection = server.connection();
        let raw: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut connection).unwrap();
        assert!(crypto::is_sealed(&raw));
        assert!(
            raw.len() * 2 < state.len(),
            "{} of {}",
            raw.len(),
            state.len()
        );
        assert_eq!(store.get(&key).await.unwrap(), Some(state.clone()));
        // A state written before packing: sealed as it was.
        let old = store.seal(&key, &state).unwrap();
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(old)
            .query(&mut connection)
            .unwrap();
        assert_eq!(store.get(&key).await.unwrap(), Some(state));
    }

    /// Queue entries are packed before sealing through the store's
    /// `seal`, and entries sealed before packing still open.
    #[tokio::test]
    async fn queue_entries_are_sealed_packed_and_unpacked_ones_still_open() {
        let server = RedisServer::start();
        let redis = redis_store(server.url(), "", &[K1]).await;
        let store = Store::Redis(redis.clone());
        let entry = tests::state_json(6);
        for kind in [crate::store::INBOX_ENTRY, crate::store::OUTBOX_ENTRY] {
            let sealed = store.seal(kind, &entry).unwrap();
            assert!(crypto::is_sealed(&sealed));
            let unpacked = redis.seal(kind, &entry).unwrap();
            assert!(
                sealed.len() < unpacked.len(),
                "{kind}: {} against {}",
                sealed.len(),
                unpacked.len()
            );
            assert_eq!(store.open(kind, &sealed).unwrap(), entry);
            assert_eq!(store.open(kind, &unpacked).unwrap(), entry, "{kind}");
        }
        // Other sealed values are not packed.
        let index = "sb:v1:handoff-index-entry";
        let sealed = store.seal(index, &entry).unwrap();
        assert_eq!(redis.open(index, &sealed).unwrap(), entry);
    }

    #[tokio::test]
    async fn sealed_values_show_no_plaintext_and_tampering_is_detected() {
        let server = RedisServer::start();
        let store = redis_store(server.url(), "", &[K1]).await;
        let conv = conversation(5);
        fill(&Store::Redis(store.clone()), &conv, "my-secret-question").await;
        for (key, _, values) in dump(&server) {
            for value in values {
                if key.starts_with("sb:v1:seen:")
                    || key.starts_with("sb:v1:done:")
                    || key.starts_with("sb:v1:sent:")
                {
                    assert!(value.is_empty(), "marks hold nothing: {key}");
                    continue;
                }
                assert!(crypto::is_sealed(&value), "{key} is not sealed");
                for plain in ["my-secret-question", "10023", "acct-9", "d-named"] {
                    assert!(!contains(&value, plain), "{plain} readable in {key}");
                }
            }
        }

        let key = state_key(&conv);
        let mut connection = server.connection();
        let mut raw: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut connection).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 0x40;
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(&raw)
            .query(&mut connection)
            .unwrap();
        let error = store.get(&key).await.unwrap_err();
        assert!(matches!(error, StoreError::Corrupt(_)), "{error}");

        // A value copied under another key does not open there.
        let original: Vec<u8> = redis::cmd("GET")
            .arg(pending_link_key(&conv))
            .query(&mut connection)
            .unwrap();
        let other = pending_link_key(&conversation(6));
        let _: () = redis::cmd("SET")
            .arg(&other)
            .arg(original)
            .query(&mut connection)
            .unwrap();
        assert!(matches!(
            store.get(&other).await,
            Err(StoreError::Corrupt(_))
        ));

        // Plain text found where a sealed value belongs is refused.
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg("{\"plain\":1}")
            .query(&mut connection)
            .unwrap();
        let error = store.get(&key).await.unwrap_err().to_string();
        assert!(error.contains("not sealed"), "{error}");
    }

    #[tokio::test]
    async fn rotated_keys_read_old_values_and_seal_new_ones_with_the_new_key() {
        let server = RedisServer::start();
        let before = redis_store(server.url(), "", &[K1]).await;
        before
            .put(
                "sb:v1:state:{a}",
                b"written with k1",
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        before.push_dead_letter(&letter("old", None)).await.unwrap();

        let rotated = redis_store(server.url(), "", &[K2, K1]).await;
        assert_eq!(
            rotated.get("sb:v1:state:{a}").await.unwrap().as_deref(),
            Some(&b"written with k1"[..])
        );
        rotated
            .put(
                "sb:v1:state:{b}",
                b"written with k2",
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        let mut connection = server.connection();
        let raw: Vec<u8> = redis::cmd("GET")
            .arg("sb:v1:state:{b}")
            .query(&mut connection)
            .unwrap();
        assert_eq!(crypto::sealed_key_id(&raw).as_deref(), Some("k2"));
        rotated
            .push_dead_letter(&letter("new", None))
            .await
            .unwrap();
        let ids: Vec<String> = rotated
            .dead_letters(10)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.id)
            .collect();
        assert_eq!(ids, ["new", "old"]);

        // Once k1 is retired its values fail clearly; others still read.
        let retired = redis_store(server.url(), "", &[K2]).await;
        let error = retired
            .get("sb:v1:state:{a}")
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("'k1'"), "{error}");
        let ids: Vec<String> = retired
            .dead_letters(10)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.id)
            .collect();
        assert_eq!(ids, ["new"], "unreadable letters are skipped, not fatal");
    }

    #[tokio::test]
    async fn a_plaintext_store_refuses_sealed_values() {
        let server = RedisServer::start();
        let sealed = redis_store(server.url(), "", &[K1]).await;
        sealed
            .put("sb:v1:state:{a}", b"x", Duration::from_secs(60))
            .await
            .unwrap();
        let plain = redis_store(server.url(), "", &[]).await;
        let error = plain.get("sb:v1:state:{a}").await.unwrap_err().to_string();
        assert!(error.contains("no store.encryption_keys"), "{error}");
    }

    #[tokio::test]
    async fn erasing_a_conversation_leaves_nothing_about_it_in_redis() {
        let server = RedisServer::start();
        // Plain text, so the scan below can see every value.
        let store = Store::Redis(redis_store(server.url(), "", &[]).await);
        let psid = "7391846250123";
        let conv = messenger_conversation(psid);
        fill(&store, &conv, "where is my parcel").await;
        fill(&store, &messenger_conversation("5550001"), "someone else").await;
        let mentions = |dump: &[(String, i64, Vec<Vec<u8>>)]| {
            dump.iter()
                .filter(|(key, _, values)| {
                    key.contains(psid) || values.iter().any(|v| contains(v, psid))
                })
                .count()
        };
        assert!(
            mentions(&dump(&server)) >= 3,
            "the fixture mentions the PSID"
        );

        store.erase_conversation(&conv).await.unwrap();
        let after = dump(&server);
        assert_eq!(mentions(&after), 0, "{after:?}");
        assert!(
            after.iter().any(|(k, _, _)| k.contains("5550001")),
            "other conversations stay"
        );
        let ids: Vec<String> = store
            .dead_letters(10)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.id)
            .collect();
        assert_eq!(ids, ["d-other", "d-named", "d-other"]);
    }

    #[tokio::test]
    async fn erasing_pages_through_many_dead_letters() {
        let server = RedisServer::start();
        let store = redis_store(server.url(), "", &[K1]).await;
        let conv = conversation(8);
        for i in 0..450 {
            let named = (i % 3 == 0).then(|| conv.to_string());
            store
                .push_dead_letter(&letter(&format!("d{i}"), named))
                .await
                .unwrap();
        }
        store.erase_conversation(&conv).await.unwrap();
        assert_eq!(store.dead_letter_count().await.unwrap(), 300);
        let left = store.dead_letters(1000).await.unwrap();
        assert!(left.iter().all(|l| l.conversation.is_none()));
    }

    #[tokio::test]
    async fn dead_letters_are_capped_newest_first() {
        let server = RedisServer::start();
        let store = redis_store(server.url(), "", &[]).await;
        let mut connection = server.connection();
        // Fill close to the cap directly; pushing 10 000 through the store
        // would only make the test slow.
        let mut pipe = redis::pipe();
        for i in 0..MAX_DEAD_LETTERS {
            let json = serde_json::to_vec(&letter(&format!("old{i}"), None)).unwrap();
            pipe.cmd("RPUSH").arg(DEAD_LETTERS_KEY).arg(json).ignore();
        }
        let _: () = pipe.query(&mut connection).unwrap();
        store
            .push_dead_letter(&letter("newest", None))
            .await
            .unwrap();
        assert_eq!(store.dead_letter_count().await.unwrap(), MAX_DEAD_LETTERS);
        assert_eq!(store.dead_letters(1).await.unwrap()[0].id, "newest");
    }

    #[tokio::test]
    async fn keys_carry_the_configured_prefix() {
        let server = RedisServer::start();
        let store = Store::Redis(redis_store(server.url(), "staging:", &[K1]).await);
        fill(&store, &conversation(3), "x").await;
        let keys = dump(&server);
        assert!(
            keys.iter().all(|(k, _, _)| k.starts_with("staging:sb:v1:")),
            "{keys:?}"
        );
    }

    #[tokio::test]
    async fn redis_down_is_unavailable_within_the_timeout_and_recovers_by_itself() {
        let mut server = RedisServer::start();
        let mut settings = StoreSettings::new(server.url());
        settings.timeout_ms = 300;
        settings.encryption = keyring(&[K1]);
        let store = Store::connect(&settings).await.unwrap();
        store
            .put("sb:v1:state:{a}", b"x".to_vec(), Duration::from_secs(60))
            .await
            .unwrap();

        server.stop();
        for _ in 0..3 {
            let started = Instant::now();
            let error = store.get("sb:v1:state:{a}").await.unwrap_err();
            assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
            assert!(
                started.elapsed() < Duration::from_millis(800),
                "{:?}",
                started.elapsed()
            );
            assert!(matches!(
                store.ping().await,
                Err(StoreError::Unavailable(_))
            ));
        }

        server.restart();
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.ping().await.is_err() {
            assert!(Instant::now() < deadline, "the store did not reconnect");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The restarted test server is empty; writes and reads work again.
        assert_eq!(store.get("sb:v1:state:{a}").await.unwrap(), None);
        store
            .put("sb:v1:state:{a}", b"y".to_vec(), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            store.get("sb:v1:state:{a}").await.unwrap().as_deref(),
            Some(&b"y"[..])
        );
    }

    #[tokio::test]
    async fn a_redis_that_stops_answering_times_out_as_unavailable() {
        let server = RedisServer::start();
        let mut settings = StoreSettings::new(server.url());
        settings.timeout_ms = 300;
        settings.allow_plaintext = true;
        let store = Store::connect(&settings).await.unwrap();
        server.pause();
        let started = Instant::now();
        let result = store
            .first_sighting("sb:v1:seen:x", Duration::from_secs(60))
            .await;
        let elapsed = started.elapsed();
        server.resume();
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
        assert!(
            elapsed >= Duration::from_millis(250) && elapsed < Duration::from_millis(800),
            "{elapsed:?}"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.ping().await.is_err() {
            assert!(Instant::now() < deadline, "no answer after resume");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn an_unreachable_redis_at_start_is_reported_without_the_password() {
        let server = RedisServer::start();
        let port = server.port();
        drop(server);
        let mut settings = StoreSettings::new(format!("redis://:hunter2@127.0.0.1:{port}/0"));
        settings.timeout_ms = 300;
        settings.allow_plaintext = true;
        let error = RedisStore::connect(&settings)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("cannot reach Redis"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[tokio::test]
    async fn the_connection_runs_stream_commands_on_a_dedicated_link() {
        let server = RedisServer::start();
        let store = redis_store(server.url(), "", &[K1]).await;
        let mut connection = store.dedicated_connection().await.unwrap();
        let stream = store.key("sb:v1:inbox:{0}");
        let sealed = store.seal(&stream, b"event").unwrap();
        let _: String = store
            .call(
                "XADD",
                redis::cmd("XADD")
                    .arg(&stream)
                    .arg("*")
                    .arg("e")
                    .arg(sealed)
                    .query_async(&mut connection),
            )
            .await
            .unwrap();
        let reply: redis::streams::StreamRangeReply = store
            .call(
                "XRANGE",
                redis::cmd("XRANGE")
                    .arg(&stream)
                    .arg("-")
                    .arg("+")
                    .query_async(&mut store.connection()),
            )
            .await
            .unwrap();
        let stored: Vec<u8> = reply.ids[0].get("e").unwrap();
        assert_eq!(store.open(&stream, &stored).unwrap(), b"event");
    }
}

#[cfg(test)]
mod tls {
    use super::*;
    use crate::store::test_support::*;
    use switchboard_testkit::RedisServer;

    #[tokio::test]
    async fn rediss_with_the_servers_ca_connects_and_stores() {
        let server = RedisServer::start_tls();
        let mut settings = StoreSettings::new(server.tls_url().unwrap());
        settings.encryption = keyring(&[K1]);
        settings.tls_ca_file = server.ca_file().map(Path::to_path_buf);
        let store = RedisStore::connect(&settings).await.unwrap();
        store
            .put("sb:v1:state:{tls}", b"over tls", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            store.get("sb:v1:state:{tls}").await.unwrap().as_deref(),
            Some(&b"over tls"[..])
        );
    }

    #[tokio::test]
    async fn rediss_refuses_a_certificate_it_cannot_verify() {
        let server = RedisServer::start_tls();
        let mut settings = StoreSettings::new(server.tls_url().unwrap());
        settings.allow_plaintext = true;
        settings.timeout_ms = 10_000;
        // The system trust store does not know the test CA.
        let error = RedisStore::connect(&settings).await.unwrap_err();
        assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
        assert!(error.to_string().contains("certificate"), "{error}");
    }
}
