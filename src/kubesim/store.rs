//! The object store: objects as JSON, one global resourceVersion counter, a bounded event history
//! for watches, finalizers and owner-reference garbage collection.
//!
//! Every mutation happens under one lock and emits exactly one watch event, so the history is a
//! contiguous run of resourceVersions: a watch from `N` can resume iff `N >= floor`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::error::ApiError;
use super::kinds::ResourceKind;

/// `(kind key, namespace, name)`; the namespace is empty for cluster-scoped objects.
pub(crate) type ObjKey = (String, String, String);

/// The finalizer foreground deletion puts on an owner until its dependents are gone.
const FOREGROUND: &str = "foregroundDeletion";

/// Type of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// The object was created.
    Added,
    /// The object changed.
    Modified,
    /// The object was removed from the store.
    Deleted,
}

impl EventType {
    /// The wire name (`ADDED`, `MODIFIED`, `DELETED`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as the history and the watchers see it.
#[derive(Debug)]
pub(crate) struct Event {
    pub rv: u64,
    pub kind: String,
    pub namespace: String,
    pub etype: EventType,
    pub object: Value,
    /// The object before a modification (lets a filtered watch turn it into ADDED/DELETED).
    pub old: Option<Value>,
}

/// Which part of an object a write may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    /// The main resource: `.status` is kept from the stored object when the kind has `/status`.
    Main,
    /// The `/status` subresource: only `.status` changes.
    Status,
    /// Everything (test helpers playing a controller's role).
    All,
}

/// Who writes, for `metadata.managedFields`, and whether to persist.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WriteCtx<'a> {
    pub manager: Option<&'a str>,
    pub apply: bool,
    pub dry_run: bool,
    /// The field set an apply owns (`fieldsV1`).
    pub fields: Option<&'a Value>,
}

fn same_entry(e: &Value, manager: &str, operation: &str, sub: Option<&str>) -> bool {
    e.get("manager").and_then(Value::as_str) == Some(manager)
        && e.get("operation").and_then(Value::as_str) == Some(operation)
        && e.get("subresource").and_then(Value::as_str) == sub
}

/// The field set a manager's last apply (to the main resource, or to `sub`) owned.
pub(crate) fn applied_fields_of(obj: &Value, manager: &str, sub: Option<&str>) -> Option<Value> {
    meta(obj)?
        .get("managedFields")?
        .as_array()?
        .iter()
        .find(|e| same_entry(e, manager, "Apply", sub))
        .and_then(|e| e.get("fieldsV1").cloned())
}

/// `propagationPolicy` of a delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    /// Delete the owner now, dependents afterwards (the default).
    Background,
    /// Delete dependents first; the owner keeps a `foregroundDeletion` finalizer until they are gone.
    Foreground,
    /// Remove the owner reference from dependents and keep them.
    Orphan,
}

/// Options of a delete.
#[derive(Clone, Debug, Default)]
pub(crate) struct DeleteOpts {
    pub propagation: Option<Propagation>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

/// Outcome of a delete.
#[derive(Debug)]
pub(crate) enum Deleted {
    /// Finalizers keep the object; it now has a `deletionTimestamp`.
    Pending(Value),
    /// The object is gone.
    Removed(Value),
}

/// A random 64-bit number from the standard library's per-instance hasher keys.
pub(crate) fn random_u64(salt: u64) -> u64 {
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u64(salt);
    h.finish()
}

/// The current time as the apiserver writes it (RFC 3339, seconds).
pub(crate) fn now() -> Value {
    let ts = k8s_openapi::jiff::Timestamp::now();
    let secs = k8s_openapi::jiff::Timestamp::from_second(ts.as_second()).unwrap_or(ts);
    serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(secs))
        .unwrap_or(Value::Null)
}

fn is_dns_subdomain(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 253
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'.')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj).and_then(|m| m.get(field)).and_then(Value::as_str)
}

fn meta_mut(obj: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    let m = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if m.is_null() {
        *m = Value::Object(Map::new());
    }
    m.as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

fn finalizers(obj: &Value) -> Vec<String> {
    meta(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn owner_uids(obj: &Value) -> Vec<String> {
    meta(obj)
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The object without `metadata` and `status`: what `metadata.generation` tracks.
fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

/// The store proper. Held behind one mutex by the server.
pub(crate) struct Store {
    kinds: BTreeMap<(String, String, String), Arc<ResourceKind>>,
    rv: u64,
    seq: u64,
    objects: BTreeMap<ObjKey, Value>,
    uids: HashMap<String, ObjKey>,
    dependents: HashMap<String, BTreeSet<ObjKey>>,
    history: VecDeque<Arc<Event>>,
    history_cap: usize,
    floor: u64,
    tx: broadcast::Sender<Arc<Event>>,
}

impl Store {
    pub fn new(history_cap: usize, tx: broadcast::Sender<Arc<Event>>) -> Self {
        Self {
            kinds: BTreeMap::new(),
            rv: 1,
            seq: 0,
            objects: BTreeMap::new(),
            uids: HashMap::new(),
            dependents: HashMap::new(),
            history: VecDeque::new(),
            history_cap: history_cap.max(1),
            floor: 1,
            tx,
        }
    }

    pub fn register(&mut self, kind: ResourceKind) {
        let k = (
            kind.group.clone(),
            kind.version.clone(),
            kind.plural.clone(),
        );
        self.kinds.insert(k, Arc::new(kind));
    }

    pub fn kinds(&self) -> impl Iterator<Item = &Arc<ResourceKind>> {
        self.kinds.values()
    }

    pub fn kind(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceKind>> {
        self.kinds
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }

    pub fn rv(&self) -> u64 {
        self.rv
    }

    pub fn floor(&self) -> u64 {
        self.floor
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// Events after `rv`, or `None` when some of them were already dropped from the history.
    pub fn history_after(&self, rv: u64) -> Option<Vec<Arc<Event>>> {
        if rv < self.floor {
            return None;
        }
        Some(self.history.iter().filter(|e| e.rv > rv).cloned().collect())
    }

    pub fn get(&self, kind: &ResourceKind, ns: &str, name: &str) -> Option<&Value> {
        self.objects.get(&key(kind, ns, name))
    }

    /// Objects of a kind, in `(namespace, name)` order, optionally in one namespace, after `from`.
    pub fn list<'a>(
        &'a self,
        kind: &ResourceKind,
        ns: Option<&str>,
        after: Option<(&str, &str)>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        let k = kind.key();
        let start = match after {
            Some((ans, aname)) => {
                std::ops::Bound::Excluded((k.clone(), ans.to_string(), aname.to_string()))
            }
            None => {
                std::ops::Bound::Included((k.clone(), ns.unwrap_or("").to_string(), String::new()))
            }
        };
        let ns = ns.map(str::to_string);
        self.objects
            .range((start, std::ops::Bound::Unbounded))
            .take_while(move |((kk, ons, _), _)| *kk == k && ns.as_ref().is_none_or(|n| n == ons))
            .map(|(_, v)| v)
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn new_uid(&mut self) -> String {
        self.seq += 1;
        let a = random_u64(self.seq);
        let b = random_u64(a ^ self.seq);
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            (b >> 48) & 0xfff,
            b & 0xffff_ffff_ffff
        )
    }

    fn generate_name(&mut self, prefix: &str) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        self.seq += 1;
        let mut r = random_u64(self.seq);
        let mut name = prefix.to_string();
        for _ in 0..5 {
            name.push(ALPHABET[(r % ALPHABET.len() as u64) as usize] as char);
            r /= ALPHABET.len() as u64;
        }
        name
    }

    fn emit(&mut self, etype: EventType, k: &ObjKey, object: Value, old: Option<Value>) {
        let ev = Arc::new(Event {
            rv: self.rv,
            kind: k.0.clone(),
            namespace: k.1.clone(),
            etype,
            object,
            old,
        });
        self.history.push_back(ev.clone());
        while self.history.len() > self.history_cap {
            if let Some(dropped) = self.history.pop_front() {
                self.floor = dropped.rv;
            }
        }
        // No receivers is fine: nobody watches.
        let _ = self.tx.send(ev);
    }

    fn index(&mut self, k: &ObjKey, old: Option<&Value>, new: Option<&Value>) {
        if let Some(old) = old {
            if let Some(uid) = meta_str(old, "uid") {
                self.uids.remove(uid);
            }
            for owner in owner_uids(old) {
                if let Some(set) = self.dependents.get_mut(&owner) {
                    set.remove(k);
                    if set.is_empty() {
                        self.dependents.remove(&owner);
                    }
                }
            }
        }
        if let Some(new) = new {
            if let Some(uid) = meta_str(new, "uid") {
                self.uids.insert(uid.to_string(), k.clone());
            }
            for owner in owner_uids(new) {
                self.dependents.entry(owner).or_default().insert(k.clone());
            }
        }
    }

    fn record_manager(
        meta: &mut Map<String, Value>,
        kind: &str,
        ctx: WriteCtx<'_>,
        sub: Option<&str>,
    ) {
        let Some(manager) = ctx.manager else { return };
        let operation = if ctx.apply { "Apply" } else { "Update" };
        let mut entry = json!({
            "manager": manager,
            "operation": operation,
            "apiVersion": kind,
            "time": now(),
            "fieldsType": "FieldsV1",
            "fieldsV1": ctx.fields.cloned().unwrap_or_else(|| json!({})),
        });
        if let (Some(s), Some(e)) = (sub, entry.as_object_mut()) {
            e.insert("subresource".into(), Value::String(s.into()));
        }
        let list = meta
            .entry("managedFields")
            .or_insert_with(|| Value::Array(Vec::new()));
        if !list.is_array() {
            *list = Value::Array(Vec::new());
        }
        if let Some(list) = list.as_array_mut() {
            list.retain(|e| !same_entry(e, manager, operation, sub));
            list.push(entry);
        }
    }

    /// Creates an object (POST, or apply on an absent object).
    pub fn create(
        &mut self,
        kind: &ResourceKind,
        ns: &str,
        mut obj: Value,
        keep_status: bool,
        ctx: WriteCtx<'_>,
    ) -> Result<Value, ApiError> {
        check_type(kind, &mut obj)?;
        if kind.status
            && !keep_status
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        let name = {
            let m = meta_mut(&mut obj)?;
            if kind.namespaced {
                match m.get("namespace").and_then(Value::as_str) {
                    Some(n) if !n.is_empty() && n != ns => {
                        return Err(ApiError::bad_request(format!(
                            "the namespace of the provided object ({n}) does not match the namespace sent on the request ({ns})"
                        )));
                    }
                    _ => {
                        m.insert("namespace".into(), Value::String(ns.into()));
                    }
                }
            } else {
                m.remove("namespace");
            }
            m.get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let name = if name.is_empty() {
            let prefix = meta_str(&obj, "generateName").unwrap_or("").to_string();
            if prefix.is_empty() {
                return Err(ApiError::invalid(format!(
                    "{} is invalid: metadata.name: Required value: name or generateName is required",
                    kind.kind
                )));
            }
            self.generate_name(&prefix)
        } else {
            name
        };
        if !is_dns_subdomain(&name) {
            return Err(ApiError::invalid(format!(
                "{} \"{name}\" is invalid: metadata.name: Invalid value: a lowercase RFC 1123 subdomain is required",
                kind.kind
            )));
        }
        let k = key(kind, ns, &name);
        if self.objects.contains_key(&k) {
            return Err(ApiError::already_exists(&kind.plural, &name));
        }
        let uid = self.new_uid();
        let rv = if ctx.dry_run { self.rv } else { self.rv + 1 };
        let m = meta_mut(&mut obj)?;
        m.insert("name".into(), Value::String(name));
        m.insert("uid".into(), Value::String(uid));
        m.insert("resourceVersion".into(), Value::String(rv.to_string()));
        m.insert("generation".into(), json!(1));
        m.insert("creationTimestamp".into(), now());
        m.remove("deletionTimestamp");
        m.remove("deletionGracePeriodSeconds");
        m.remove("managedFields");
        Self::record_manager(m, &kind.api_version(), ctx, None);
        if ctx.dry_run {
            return Ok(obj);
        }
        self.next_rv();
        self.index(&k, None, Some(&obj));
        self.objects.insert(k.clone(), obj.clone());
        self.emit(EventType::Added, &k, obj.clone(), None);
        Ok(obj)
    }

    /// Replaces an object (PUT, and every patch after it is applied to the stored object).
    pub fn update(
        &mut self,
        kind: &ResourceKind,
        ns: &str,
        name: &str,
        mut new: Value,
        part: Part,
        ctx: WriteCtx<'_>,
    ) -> Result<Value, ApiError> {
        let k = key(kind, ns, name);
        let old = self
            .objects
            .get(&k)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&kind.plural, name))?;
        check_type(kind, &mut new)?;
        if let Some(n) = meta_str(&new, "name").filter(|n| !n.is_empty() && *n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        if kind.namespaced
            && let Some(n) = meta_str(&new, "namespace").filter(|n| !n.is_empty() && *n != ns)
        {
            return Err(ApiError::bad_request(format!(
                "the namespace of the object ({n}) does not match the namespace on the URL ({ns})"
            )));
        }
        let old_rv = meta_str(&old, "resourceVersion").unwrap_or("");
        if let Some(rv) = meta_str(&new, "resourceVersion").filter(|r| !r.is_empty())
            && rv != old_rv
        {
            return Err(ApiError::conflict(
                &kind.plural,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        if let Some(uid) = meta_str(&new, "uid").filter(|u| !u.is_empty())
            && Some(uid) != meta_str(&old, "uid")
        {
            return Err(ApiError::conflict(
                &kind.plural,
                name,
                "Precondition failed: UID in object meta does not match",
            ));
        }
        if part != Part::Status && meta(&old).is_some_and(|m| m.contains_key("deletionTimestamp")) {
            let before = finalizers(&old);
            if finalizers(&new).iter().any(|f| !before.contains(f)) {
                return Err(ApiError::invalid(format!(
                    "{} \"{name}\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted",
                    kind.kind
                )));
            }
        }
        let new_status = new.get("status").cloned();
        let mut result = match part {
            Part::Main | Part::All => new,
            Part::Status => old.clone(),
        };
        let keep_old_status = part == Part::Main && kind.status;
        if let Some(m) = result.as_object_mut() {
            let status = match part {
                Part::Status => new_status,
                _ if keep_old_status => old.get("status").cloned(),
                _ => m.get("status").cloned(),
            };
            match status {
                Some(s) if !s.is_null() => {
                    m.insert("status".into(), s);
                }
                _ => {
                    m.remove("status");
                }
            }
        }
        {
            let old_meta = meta(&old).cloned().unwrap_or_default();
            let m = meta_mut(&mut result)?;
            for field in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "resourceVersion",
                "managedFields",
            ] {
                match old_meta.get(field) {
                    Some(v) => m.insert(field.into(), v.clone()),
                    None => m.remove(field),
                };
            }
            m.remove("generateName");
            if let Some(g) = old_meta.get("generateName") {
                m.insert("generateName".into(), g.clone());
            }
        }
        if spec_part(&old) != spec_part(&result) {
            let g = meta(&old)
                .and_then(|m| m.get("generation"))
                .and_then(Value::as_i64)
                .unwrap_or(1);
            meta_mut(&mut result)?.insert("generation".into(), json!(g + 1));
        }
        let sub = (part == Part::Status).then_some("status");
        let ownership_changed = match (ctx.manager, ctx.fields) {
            (Some(m), Some(f)) if ctx.apply => applied_fields_of(&old, m, sub).as_ref() != Some(f),
            _ => false,
        };
        if result == old && !ownership_changed {
            return Ok(old);
        }
        Self::record_manager(meta_mut(&mut result)?, &kind.api_version(), ctx, sub);
        if ctx.dry_run {
            return Ok(result);
        }
        Ok(self.write(&k, result))
    }

    /// Stores a changed object: bumps the resourceVersion, emits MODIFIED, and removes the
    /// object instead when it is being deleted and has no finalizers left.
    fn write(&mut self, k: &ObjKey, mut obj: Value) -> Value {
        let rv = self.next_rv();
        if let Ok(m) = meta_mut(&mut obj) {
            m.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        let old = self.objects.insert(k.clone(), obj.clone());
        self.index(k, old.as_ref(), Some(&obj));
        let deleting = meta(&obj).is_some_and(|m| m.contains_key("deletionTimestamp"));
        if deleting && finalizers(&obj).is_empty() {
            // The last finalizer went away: the object goes with this very write.
            self.objects.remove(k);
            self.index(k, Some(&obj), None);
            self.emit(EventType::Deleted, k, obj.clone(), None);
            self.after_removal(&obj);
            return obj;
        }
        self.emit(EventType::Modified, k, obj.clone(), old);
        obj
    }

    fn remove(&mut self, k: &ObjKey) -> Option<Value> {
        let mut obj = self.objects.remove(k)?;
        self.index(k, Some(&obj), None);
        let rv = self.next_rv();
        if let Ok(m) = meta_mut(&mut obj) {
            m.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        self.emit(EventType::Deleted, k, obj.clone(), None);
        self.after_removal(&obj);
        Some(obj)
    }

    /// Garbage collection once `gone` left the store: dependents without another live owner are
    /// deleted (their own finalizers honoured), the others lose the owner reference; an owner in
    /// foreground deletion whose last dependent this was goes too.
    fn after_removal(&mut self, gone: &Value) {
        if gone.get("apiVersion").and_then(Value::as_str) == Some("v1")
            && gone.get("kind").and_then(Value::as_str) == Some("Namespace")
        {
            // A namespace takes its contents with it.
            let ns = meta_str(gone, "name").unwrap_or("").to_string();
            let inside: Vec<ObjKey> = self
                .objects
                .keys()
                .filter(|(_, n, _)| !ns.is_empty() && *n == ns)
                .cloned()
                .collect();
            for k in inside {
                self.delete_key(&k, Propagation::Background);
            }
        }
        let Some(uid) = meta_str(gone, "uid").map(str::to_string) else {
            return;
        };
        let deps: Vec<ObjKey> = self
            .dependents
            .get(&uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for dk in deps {
            let Some(dep) = self.objects.get(&dk).cloned() else {
                continue;
            };
            let live_owner = owner_uids(&dep)
                .iter()
                .any(|o| *o != uid && self.uids.contains_key(o));
            if live_owner {
                let mut changed = dep.clone();
                if let Ok(m) = meta_mut(&mut changed)
                    && let Some(refs) = m.get_mut("ownerReferences").and_then(Value::as_array_mut)
                {
                    refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid.as_str()));
                }
                self.write(&dk, changed);
            } else {
                self.delete_key(&dk, Propagation::Background);
            }
        }
        for owner in owner_uids(gone) {
            if let Some(ok) = self.uids.get(&owner).cloned() {
                self.finish_foreground(&ok);
            }
        }
    }

    /// Drops the `foregroundDeletion` finalizer of an owner whose dependents are all gone.
    fn finish_foreground(&mut self, k: &ObjKey) {
        let Some(owner) = self.objects.get(k) else {
            return;
        };
        let fins = finalizers(owner);
        let waiting = fins.iter().any(|f| f == FOREGROUND);
        let uid = meta_str(owner, "uid").unwrap_or("");
        if !waiting || self.dependents.get(uid).is_some_and(|d| !d.is_empty()) {
            return;
        }
        let mut changed = owner.clone();
        if let Ok(m) = meta_mut(&mut changed) {
            let rest: Vec<Value> = fins
                .into_iter()
                .filter(|f| f != FOREGROUND)
                .map(Value::String)
                .collect();
            m.insert("finalizers".into(), Value::Array(rest));
        }
        self.write(k, changed);
    }

    /// Deletes an object by key: `deletionTimestamp` while finalizers remain, otherwise removal.
    fn delete_key(&mut self, k: &ObjKey, policy: Propagation) -> Option<Deleted> {
        let obj = self.objects.get(k)?.clone();
        if meta(&obj).is_some_and(|m| m.contains_key("deletionTimestamp")) {
            return Some(Deleted::Pending(obj));
        }
        let uid = meta_str(&obj, "uid").unwrap_or("").to_string();
        let deps: Vec<ObjKey> = self
            .dependents
            .get(&uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        if policy == Propagation::Orphan {
            for dk in &deps {
                if let Some(mut dep) = self.objects.get(dk).cloned() {
                    if let Ok(m) = meta_mut(&mut dep)
                        && let Some(refs) =
                            m.get_mut("ownerReferences").and_then(Value::as_array_mut)
                    {
                        refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid.as_str()));
                    }
                    self.write(dk, dep);
                }
            }
        }
        let mut fins = finalizers(&obj);
        let foreground = policy == Propagation::Foreground && !deps.is_empty();
        if foreground {
            fins.push(FOREGROUND.to_string());
        }
        if fins.is_empty() {
            return self.remove(k).map(Deleted::Removed);
        }
        let mut marked = obj;
        if let Ok(m) = meta_mut(&mut marked) {
            m.insert("deletionTimestamp".into(), now());
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            m.insert(
                "finalizers".into(),
                Value::Array(fins.into_iter().map(Value::String).collect()),
            );
            let g = m.get("generation").and_then(Value::as_i64).unwrap_or(1);
            m.insert("generation".into(), json!(g + 1));
        }
        let marked = self.write(k, marked);
        if foreground {
            for dk in deps {
                self.delete_key(&dk, Propagation::Foreground);
            }
            self.finish_foreground(k);
        }
        Some(match self.objects.get(k) {
            Some(v) => Deleted::Pending(v.clone()),
            None => Deleted::Removed(marked),
        })
    }

    /// DELETE on an object.
    pub fn delete(
        &mut self,
        kind: &ResourceKind,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> Result<Deleted, ApiError> {
        let k = key(kind, ns, name);
        let obj = self
            .objects
            .get(&k)
            .ok_or_else(|| ApiError::not_found(&kind.plural, name))?;
        if let Some(uid) = &opts.uid
            && meta_str(obj, "uid") != Some(uid.as_str())
        {
            return Err(ApiError::conflict(
                &kind.plural,
                name,
                "Precondition failed: UID in precondition does not match",
            ));
        }
        if let Some(rv) = &opts.resource_version
            && meta_str(obj, "resourceVersion") != Some(rv.as_str())
        {
            return Err(ApiError::conflict(
                &kind.plural,
                name,
                "Precondition failed: ResourceVersion in precondition does not match",
            ));
        }
        if opts.dry_run {
            return Ok(if finalizers(obj).is_empty() {
                Deleted::Removed(obj.clone())
            } else {
                Deleted::Pending(obj.clone())
            });
        }
        let policy = opts.propagation.unwrap_or(Propagation::Background);
        self.delete_key(&k, policy)
            .ok_or_else(|| ApiError::not_found(&kind.plural, name))
    }
}

fn key(kind: &ResourceKind, ns: &str, name: &str) -> ObjKey {
    let ns = if kind.namespaced { ns } else { "" };
    (kind.key(), ns.to_string(), name.to_string())
}

/// Checks `apiVersion`/`kind` in a body (when given) and fills them in.
fn check_type(kind: &ResourceKind, obj: &mut Value) -> Result<(), ApiError> {
    let api_version = kind.api_version();
    let m = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    if let Some(v) = m.get("apiVersion").and_then(Value::as_str)
        && !v.is_empty()
        && v != api_version
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({v}) does not match the expected API version ({api_version})"
        )));
    }
    if let Some(v) = m.get("kind").and_then(Value::as_str)
        && !v.is_empty()
        && v != kind.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({v}) does not match the expected kind ({})",
            kind.kind
        )));
    }
    m.insert("apiVersion".into(), Value::String(api_version));
    m.insert("kind".into(), Value::String(kind.kind.clone()));
    Ok(())
}
