//! The architecture test: what ARCHITECTURE.md says about dependencies,
//! checked against `cargo metadata` and the sources, so that the rule
//! outlives the change that wrote it down.
//!
//! - Crates depend only on crates of a lower layer (the first `text` block
//!   under "## The dependency rule", top layer first), test dependencies
//!   included.
//! - The pure crates (events, host, plugins) reach no async runtime,
//!   database, HTTP, TLS or NATS crate, even transitively, and their sources
//!   use none of `std::fs`, `std::net`, `std::process`.
//! - The example plugins use the host's public API and nothing else of the
//!   engine.
//! - Inside a crate, no module imports from a module that imports it back
//!   (no cycle among files), and inside the engine no module imports from a
//!   layer above its own (the second `text` block).
//!   Imports are read from `use` items, paths, and the tokens of macro
//!   calls (`tokio::select!`, `format!`, …); every source file under a
//!   crate's `src/` must be reached from its root, or the check says so.
//! - No product source file is over 1,000 lines; every crate takes the
//!   workspace's lints (`unsafe_code = "forbid"`); product code claims
//!   nothing with `unwrap_or_else(|_| unreachable!(..))` or `panic!`.
//!
//! Each check is also run on a case made to break it, so a checker that
//! sees nothing cannot pass.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;
use syn::visit::Visit;

/// Crates that must do no I/O: none of these may be among their normal
/// dependencies, direct or transitive.
const PURE: [&str; 3] = ["provenant-events", "provenant-host", "provenant-plugins"];

/// What doing I/O means here: an async runtime or reactor, a database
/// driver, an HTTP, WebSocket or TLS stack, NATS, sockets (a name, or a
/// name's prefix ending in `-`).
const IO_CRATES: [&str; 31] = [
    "tokio",
    "tokio-",
    "async-std",
    "async-io",
    "async-net",
    "smol",
    "mio",
    "socket2",
    "sqlx",
    "sqlx-",
    "rusqlite",
    "libsqlite3-sys",
    "postgres",
    "postgres-",
    "redis",
    "axum",
    "hyper",
    "hyper-",
    "h2",
    "reqwest",
    "ureq",
    "curl",
    "isahc",
    "tungstenite",
    "rustls",
    "native-tls",
    "openssl",
    "async-nats",
    "nats",
    "tonic",
    "warp",
];

/// What the pure crates' sources may not use of std.
const IO_MODULES: [&str; 3] = ["fs", "net", "process"];

/// The longest a product source file may be.
const MAX_LINES: usize = 1_000;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the workspace")
        .to_path_buf()
}

/// `cargo metadata` of the workspace, with the dependency graph resolved
/// for this machine's platform (read once for all the checks).
fn metadata() -> &'static Value {
    static METADATA: OnceLock<Value> = OnceLock::new();
    METADATA.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let version = Command::new(rustc)
            .arg("-vV")
            .output()
            .expect("run rustc -vV");
        let version = String::from_utf8_lossy(&version.stdout);
        let host = version
            .lines()
            .find_map(|l| l.strip_prefix("host: "))
            .expect("rustc -vV names the host");
        let out = Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--locked", "--offline"])
            .args(["--filter-platform", host])
            .current_dir(workspace_root())
            .output()
            .expect("run cargo metadata");
        assert!(
            out.status.success(),
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("cargo metadata's JSON")
    })
}

/// The lines of the first ```text block after `heading` in ARCHITECTURE.md,
/// each split at commas: the layers, top first.
fn layers_in_architecture_md(heading: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(workspace_root().join("ARCHITECTURE.md"))
        .expect("read ARCHITECTURE.md");
    let after = text
        .split_once(heading)
        .unwrap_or_else(|| panic!("ARCHITECTURE.md has no {heading:?}"))
        .1;
    let block = after
        .split_once("```text\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .unwrap_or_else(|| panic!("no ```text block after {heading:?} in ARCHITECTURE.md"))
        .0;
    block
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.split(',').map(|c| c.trim().to_owned()).collect())
        .collect()
}

/// Layer numbers from the top-first lines: the bottom line is 0.
fn layer_numbers(lines: &[Vec<String>]) -> BTreeMap<String, usize> {
    let mut layers = BTreeMap::new();
    for (i, line) in lines.iter().rev().enumerate() {
        for name in line {
            assert!(
                layers.insert(name.clone(), i).is_none(),
                "{name} is listed twice in ARCHITECTURE.md's rule"
            );
        }
    }
    layers
}

/// The workspace's packages: name → (id, manifest path, root source files).
struct Workspace {
    packages: BTreeMap<String, Package>,
    /// Package id → its normal and build dependencies' ids.
    deps: HashMap<String, Vec<String>>,
    /// Package id → its dependencies of every kind (dev included).
    all_deps: HashMap<String, Vec<String>>,
    /// Package id → its name.
    names: HashMap<String, String>,
}

struct Package {
    id: String,
    manifest: PathBuf,
    /// The crate roots of its library and binaries.
    roots: Vec<PathBuf>,
}

impl Workspace {
    fn read() -> Self {
        let meta = metadata();
        let members: BTreeSet<&str> = meta["workspace_members"]
            .as_array()
            .expect("workspace_members")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let mut packages = BTreeMap::new();
        let mut names = HashMap::new();
        for p in meta["packages"].as_array().expect("packages") {
            let id = p["id"].as_str().unwrap_or_default().to_owned();
            let name = p["name"].as_str().unwrap_or_default().to_owned();
            names.insert(id.clone(), name.clone());
            if !members.contains(id.as_str()) {
                continue;
            }
            let roots = p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| {
                    t["kind"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|k| k == "lib" || k == "bin")
                })
                .filter_map(|t| t["src_path"].as_str().map(PathBuf::from))
                .collect();
            packages.insert(
                name,
                Package {
                    id,
                    manifest: PathBuf::from(p["manifest_path"].as_str().unwrap_or_default()),
                    roots,
                },
            );
        }
        let mut deps = HashMap::new();
        let mut all_deps = HashMap::new();
        for node in meta["resolve"]["nodes"].as_array().expect("resolve") {
            let id = node["id"].as_str().unwrap_or_default().to_owned();
            let all: Vec<String> = node["deps"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d["pkg"].as_str().map(str::to_owned))
                .collect();
            all_deps.insert(id.clone(), all);
            let normal: Vec<String> = node["deps"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|k| k["kind"].is_null() || k["kind"] == "build")
                })
                .filter_map(|d| d["pkg"].as_str().map(str::to_owned))
                .collect();
            deps.insert(id, normal);
        }
        Workspace {
            packages,
            deps,
            all_deps,
            names,
        }
    }

    fn name(&self, id: &str) -> &str {
        self.names.get(id).map_or("?", String::as_str)
    }

    /// The names of `package`'s direct normal dependencies.
    fn direct(&self, package: &str) -> Vec<&str> {
        let id = &self.packages[package].id;
        self.deps[id].iter().map(|d| self.name(d)).collect()
    }

    /// The names of `package`'s direct dependencies of every kind.
    fn direct_any_kind(&self, package: &str) -> Vec<&str> {
        let id = &self.packages[package].id;
        self.all_deps[id].iter().map(|d| self.name(d)).collect()
    }

    /// Every package `package` reaches through normal dependencies, each
    /// with the chain that reaches it.
    fn transitive(&self, package: &str) -> BTreeMap<String, Vec<String>> {
        let start = self.packages[package].id.clone();
        let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut queue = vec![(start, vec![package.to_owned()])];
        while let Some((id, chain)) = queue.pop() {
            for d in self.deps.get(&id).into_iter().flatten() {
                let name = self.name(d).to_owned();
                if seen.contains_key(&name) {
                    continue;
                }
                let mut next = chain.clone();
                next.push(name.clone());
                seen.insert(name, next.clone());
                queue.push((d.clone(), next));
            }
        }
        seen
    }
}

fn is_io_crate(name: &str) -> bool {
    IO_CRATES.iter().any(|c| {
        if c.ends_with('-') {
            name.starts_with(c)
        } else {
            name == *c
        }
    })
}

/// The I/O crates a pure crate reaches, with how.
fn io_reached(ws: &Workspace, package: &str) -> Vec<String> {
    ws.transitive(package)
        .into_iter()
        .filter(|(name, _)| is_io_crate(name))
        .map(|(_, chain)| chain.join(" → "))
        .collect()
}

/// Dependencies between workspace crates that do not point to a lower
/// layer.
fn upward_crate_deps(ws: &Workspace, layers: &BTreeMap<String, usize>) -> Vec<String> {
    let mut wrong = Vec::new();
    for name in ws.packages.keys() {
        let Some(&own) = layers.get(name) else {
            wrong.push(format!(
                "{name} is not in ARCHITECTURE.md's dependency rule"
            ));
            continue;
        };
        for dep in ws.direct_any_kind(name) {
            if let Some(&theirs) = layers.get(dep)
                && theirs >= own
            {
                wrong.push(format!(
                    "{name} (layer {own}) depends on {dep} (layer {theirs}): dependencies point down"
                ));
            }
        }
    }
    wrong
}

#[test]
fn crates_depend_only_on_lower_layers() {
    let ws = Workspace::read();
    let layers = layer_numbers(&layers_in_architecture_md("## The dependency rule"));
    let wrong = upward_crate_deps(&ws, &layers);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The check sees a dependency that points the wrong way: the same graph
    // with the engine moved below the host fails it.
    let mut inverted = layers.clone();
    inverted.insert("provenant-engine".into(), 0);
    assert!(
        upward_crate_deps(&ws, &inverted)
            .iter()
            .any(|w| w.starts_with("provenant-engine")),
        "the crate check cannot see an upward dependency"
    );
}

#[test]
fn the_pure_crates_reach_no_io_crate() {
    let ws = Workspace::read();
    for package in PURE {
        let reached = io_reached(&ws, package);
        assert!(
            reached.is_empty(),
            "{package} must do no I/O, yet reaches:\n{}",
            reached.join("\n")
        );
    }
    // The check sees I/O where there is some.
    assert!(
        io_reached(&ws, "provenant-log")
            .iter()
            .any(|chain| chain.ends_with("sqlx")),
        "the I/O check cannot see provenant-log's sqlx"
    );
}

#[test]
fn the_example_plugins_use_only_the_hosts_public_api() {
    let ws = Workspace::read();
    let workspace_deps: Vec<&str> = ws
        .direct("provenant-plugins")
        .into_iter()
        .filter(|d| ws.packages.contains_key(*d))
        .collect();
    assert_eq!(
        workspace_deps.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from(["provenant-events", "provenant-host"]),
        "provenant-plugins depends on {workspace_deps:?}"
    );
}

/// One source file as a module of its crate.
#[derive(Debug, Clone)]
struct SourceModule {
    /// `["service", "http"]`; empty for the crate root.
    path: Vec<String>,
    file: PathBuf,
    /// Declared under `#[cfg(test)]` (or inside such a module).
    test_only: bool,
}

/// The modules of the crate rooted at `root`, by following its `mod x;`
/// declarations, test-only ones marked.
fn modules_of(root: &Path) -> Vec<SourceModule> {
    let mut found = Vec::new();
    let mut queue = vec![SourceModule {
        path: Vec::new(),
        file: root.to_path_buf(),
        test_only: false,
    }];
    while let Some(module) = queue.pop() {
        let file = parse(&module.file);
        let is_dir_owner = matches!(
            module.file.file_name().and_then(|n| n.to_str()),
            Some("mod.rs" | "lib.rs" | "main.rs")
        );
        let dir = if is_dir_owner {
            module.file.parent().map(Path::to_path_buf)
        } else {
            Some(module.file.with_extension(""))
        }
        .unwrap_or_default();
        declared_modules(&file.items, &dir, &module, false, &mut queue);
        found.push(module);
    }
    found
}

/// Queues the file modules `items` declare (`mod x;`), looking into inline
/// modules (`mod x { mod y; }` is `x/y.rs`).
fn declared_modules(
    items: &[syn::Item],
    dir: &Path,
    parent: &SourceModule,
    test_only: bool,
    queue: &mut Vec<SourceModule>,
) {
    for item in items {
        let syn::Item::Mod(m) = item else { continue };
        let name = m.ident.to_string();
        let test_only = test_only || is_test_only(&m.attrs);
        let mut path = parent.path.clone();
        path.push(name.clone());
        match &m.content {
            Some((_, inner)) => {
                let inline = SourceModule {
                    path,
                    file: parent.file.clone(),
                    test_only,
                };
                declared_modules(inner, &dir.join(&name), &inline, test_only, queue);
            }
            None => {
                let flat = dir.join(format!("{name}.rs"));
                let nested = dir.join(&name).join("mod.rs");
                let file = if flat.exists() { flat } else { nested };
                queue.push(SourceModule {
                    path,
                    file,
                    test_only: test_only || parent.test_only,
                });
            }
        }
    }
}

fn parse(file: &Path) -> syn::File {
    let text =
        std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    syn::parse_file(&text).unwrap_or_else(|e| panic!("parse {}: {e}", file.display()))
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

/// The paths a file's product code uses (test-only items left out): from
/// `use` items, from paths, and from the tokens of macro calls.
struct PathsUsed<'k> {
    /// The module of the code being visited (inline modules push onto it).
    module: Vec<String>,
    /// The crate's modules, to resolve a path that starts with a child
    /// module's name.
    known: &'k BTreeSet<Vec<String>>,
    /// Paths within the crate, made absolute.
    found: Vec<Vec<String>>,
    /// Every path as written (for what the pure crates may not use).
    written: Vec<Vec<String>>,
}

impl PathsUsed<'_> {
    fn absolute(&self, segments: &[String]) -> Option<Vec<String>> {
        let mut module = self.module.clone();
        let mut rest = segments;
        match rest.first().map(String::as_str) {
            Some("crate") => {
                module.clear();
                rest = &rest[1..];
            }
            Some("super") => {
                while rest.first().map(String::as_str) == Some("super") {
                    module.pop();
                    rest = &rest[1..];
                }
            }
            Some("self") => rest = &rest[1..],
            Some(first) if rest.len() > 1 => {
                // `child::item`: a path through a child module.
                let mut child = module.clone();
                child.push(first.to_owned());
                if !self.known.contains(&child) {
                    return None;
                }
            }
            _ => return None,
        }
        module.extend(rest.iter().cloned());
        Some(module)
    }

    fn record(&mut self, segments: Vec<String>) {
        if let Some(path) = self.absolute(&segments) {
            self.found.push(path);
        }
        self.written.push(segments);
    }

    fn use_tree(&mut self, prefix: Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                let mut next = prefix;
                next.push(p.ident.to_string());
                self.use_tree(next, &p.tree);
            }
            syn::UseTree::Name(n) => {
                let mut next = prefix;
                next.push(n.ident.to_string());
                self.record(next);
            }
            syn::UseTree::Rename(r) => {
                let mut next = prefix;
                next.push(r.ident.to_string());
                self.record(next);
            }
            syn::UseTree::Glob(_) => self.record(prefix),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix.clone(), t);
                }
            }
        }
    }

    /// The `a::b::c` paths in a macro call's tokens.
    fn tokens(&mut self, tokens: proc_macro2::TokenStream) {
        let trees: Vec<proc_macro2::TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < trees.len() {
            if let proc_macro2::TokenTree::Group(g) = &trees[i] {
                self.tokens(g.stream());
                i += 1;
                continue;
            }
            let proc_macro2::TokenTree::Ident(first) = &trees[i] else {
                i += 1;
                continue;
            };
            let mut segments = vec![first.to_string()];
            let mut j = i + 1;
            while let (
                Some(proc_macro2::TokenTree::Punct(a)),
                Some(proc_macro2::TokenTree::Punct(b)),
                Some(proc_macro2::TokenTree::Ident(next)),
            ) = (trees.get(j), trees.get(j + 1), trees.get(j + 2))
            {
                if a.as_char() != ':' || b.as_char() != ':' {
                    break;
                }
                segments.push(next.to_string());
                j += 3;
            }
            if segments.len() > 1 {
                self.record(segments);
            }
            i = j;
        }
    }
}

impl<'ast> Visit<'ast> for PathsUsed<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs: &[syn::Attribute] = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(u) => &u.attrs,
            syn::Item::Struct(s) => &s.attrs,
            syn::Item::Enum(e) => &e.attrs,
            syn::Item::Const(c) => &c.attrs,
            syn::Item::Static(s) => &s.attrs,
            syn::Item::Trait(t) => &t.attrs,
            _ => &[],
        };
        if is_test_only(attrs) {
            return;
        }
        match item {
            syn::Item::Mod(m) if m.content.is_some() => {
                self.module.push(m.ident.to_string());
                syn::visit::visit_item_mod(self, m);
                self.module.pop();
            }
            // Re-exports included: a module that re-exports a child's item
            // depends on that child, so a child may not use an item defined
            // in the module that declares it.
            syn::Item::Use(u) => self.use_tree(Vec::new(), &u.tree),
            _ => syn::visit::visit_item(self, item),
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        // `self`, `crate` alone name no other module.
        if segments.len() > 1 {
            self.record(segments);
        }
        syn::visit::visit_path(self, path);
    }

    /// `pub(crate)`, `pub(super)`: who may see an item, not what it uses.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.tokens(mac.tokens.clone());
        syn::visit::visit_macro(self, mac);
    }
}

/// What one product file uses.
fn paths_used<'k>(module: &SourceModule, known: &'k BTreeSet<Vec<String>>) -> PathsUsed<'k> {
    let mut used = PathsUsed {
        module: module.path.clone(),
        known,
        found: Vec::new(),
        written: Vec::new(),
    };
    used.visit_file(&parse(&module.file));
    used
}

/// Module → the modules (files) of the same crate it uses.
fn module_graph(modules: &[SourceModule]) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let product: Vec<&SourceModule> = modules.iter().filter(|m| !m.test_only).collect();
    let known: BTreeSet<Vec<String>> = product.iter().map(|m| m.path.clone()).collect();
    let mut graph = BTreeMap::new();
    for module in &product {
        let mut targets = BTreeSet::new();
        for path in paths_used(module, &known).found {
            // The longest prefix that is a module of its own file.
            let target = (0..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| known.contains(p));
            if let Some(target) = target
                && target != module.path
            {
                targets.insert(target);
            }
        }
        graph.insert(module.path.clone(), targets);
    }
    graph
}

/// The groups of modules that import each other, round in a cycle
/// (Tarjan's strongly connected components of more than one module).
fn cycles(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: HashMap<&'g Vec<String>, usize>,
        low: HashMap<&'g Vec<String>, usize>,
        stack: Vec<&'g Vec<String>>,
        on_stack: BTreeSet<&'g Vec<String>>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    fn connect<'g>(s: &mut State<'g>, v: &'g Vec<String>) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        let targets: Vec<&'g Vec<String>> = s.graph.get(v).into_iter().flatten().collect();
        for w in targets {
            if !s.graph.contains_key(w) {
                continue;
            }
            if !s.index.contains_key(w) {
                connect(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(display(w));
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v) {
            connect(&mut state, v);
        }
    }
    state.found
}

fn display(path: &[String]) -> String {
    if path.is_empty() {
        "crate".into()
    } else {
        format!("crate::{}", path.join("::"))
    }
}

/// Every product crate's modules, by crate name (the tests crate aside),
/// test-only ones included and marked.
fn crate_modules(ws: &Workspace) -> BTreeMap<String, Vec<SourceModule>> {
    ws.packages
        .iter()
        .filter(|(name, _)| name.as_str() != "provenant-tests")
        .map(|(name, p)| {
            let mut modules: Vec<SourceModule> =
                p.roots.iter().flat_map(|r| modules_of(r)).collect();
            modules.sort_by(|a, b| (&a.file, &a.path).cmp(&(&b.file, &b.path)));
            modules.dedup_by(|a, b| a.file == b.file && a.path == b.path);
            (name.clone(), modules)
        })
        .collect()
}

/// The product files (test-only modules left out), by crate.
fn product_files(ws: &Workspace) -> BTreeMap<String, Vec<SourceModule>> {
    crate_modules(ws)
        .into_iter()
        .map(|(name, modules)| {
            let mut files: Vec<SourceModule> =
                modules.into_iter().filter(|m| !m.test_only).collect();
            files.dedup_by(|a, b| a.file == b.file);
            (name, files)
        })
        .collect()
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

#[test]
fn every_source_file_is_reached_from_its_crate_root() {
    let ws = Workspace::read();
    let modules = crate_modules(&ws);
    let mut unreached = Vec::new();
    for (name, p) in &ws.packages {
        let Some(modules) = modules.get(name) else {
            continue;
        };
        let reached: BTreeSet<&PathBuf> = modules.iter().map(|m| &m.file).collect();
        let src = p.manifest.with_file_name("src");
        for file in rust_files(&src) {
            if !reached.contains(&file) {
                unreached.push(file.display().to_string());
            }
        }
    }
    assert!(
        unreached.is_empty(),
        "files the architecture checks do not reach (a `mod` they cannot follow?):\n{}",
        unreached.join("\n")
    );
    // What it reaches includes test-only files, marked as such.
    let projections = &modules["provenant-projections"];
    assert!(
        projections
            .iter()
            .any(|m| m.test_only && m.file.ends_with("plugin_metrics/tests/mod.rs")),
        "the test-only modules are not told apart"
    );
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let ws = Workspace::read();
    let mut found = Vec::new();
    for (name, modules) in crate_modules(&ws) {
        let graph = module_graph(&modules);
        for cycle in cycles(&graph) {
            // Each module of the cycle, with what it imports of the others.
            let members: BTreeSet<&String> = cycle.iter().collect();
            let edges: Vec<String> = graph
                .iter()
                .filter(|(from, _)| members.contains(&display(from)))
                .flat_map(|(from, targets)| {
                    targets
                        .iter()
                        .filter(|t| members.contains(&display(t)))
                        .map(move |t| format!("    {} → {}", display(from), display(t)))
                })
                .collect();
            found.push(format!(
                "{name}: {}\n{}",
                cycle.join(" ⇄ "),
                edges.join("\n")
            ));
        }
    }
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
    // The check sees a cycle: two modules that use each other.
    let a = vec!["a".to_owned()];
    let b = vec!["b".to_owned()];
    let graph = BTreeMap::from([
        (a.clone(), BTreeSet::from([b.clone()])),
        (b.clone(), BTreeSet::from([a.clone()])),
    ]);
    assert_eq!(
        cycles(&graph),
        vec![vec!["crate::a".to_owned(), "crate::b".to_owned()]]
    );
}

/// Imports inside the engine from a layer above the importer's.
fn upward_module_imports(
    graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
    layers: &BTreeMap<String, usize>,
) -> Vec<String> {
    let mut wrong = Vec::new();
    for (module, targets) in graph {
        let Some(top) = module.first() else {
            continue; // the crate root declares the modules
        };
        let Some(&own) = layers.get(top) else {
            wrong.push(format!(
                "{} is in no layer of ARCHITECTURE.md's rule for provenant-engine",
                display(module)
            ));
            continue;
        };
        for target in targets {
            let Some(their_top) = target.first() else {
                wrong.push(format!("{} imports from the crate root", display(module)));
                continue;
            };
            if let Some(&theirs) = layers.get(their_top)
                && theirs > own
            {
                wrong.push(format!(
                    "{} (layer {own}) imports {} (layer {theirs}), a layer above it",
                    display(module),
                    display(target)
                ));
            }
        }
    }
    wrong
}

fn path(p: &str) -> Vec<String> {
    p.split("::").map(str::to_owned).collect()
}

#[test]
fn no_engine_module_imports_from_a_layer_above_it() {
    let ws = Workspace::read();
    let layers = layer_numbers(&layers_in_architecture_md(
        "## The layers inside provenant-engine",
    ));
    let modules = crate_modules(&ws)
        .remove("provenant-engine")
        .expect("the engine");
    let graph = module_graph(&modules);
    let wrong = upward_module_imports(&graph, &layers);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The graph holds the imports of every form (or the check is vacuous):
    // `use crate::…`, `use super::…`, a path through a child module, and a
    // path only a macro call's tokens hold.
    for (from, to, how) in [
        ("commands::serve", "service::run", "use crate::…"),
        ("service::run", "service::signals", "use super::…"),
        (
            "commands::audit",
            "commands::audit::verify",
            "a child's path",
        ),
        (
            "service::worlds",
            "service::signals",
            "inside tokio::select!",
        ),
    ] {
        assert!(
            graph[&path(from)].contains(&path(to)),
            "the module graph misses {from} → {to} ({how})"
        );
    }
    // An import upwards is caught.
    let mut upward = graph.clone();
    upward
        .entry(path("service::http"))
        .or_default()
        .insert(path("commands::serve"));
    assert_eq!(upward_module_imports(&upward, &layers).len(), 1);
}

/// The `std::{fs,net,process}` paths a crate's product files use.
fn io_paths(modules: &[SourceModule]) -> Vec<String> {
    let known = BTreeSet::new();
    let mut found = Vec::new();
    for m in modules.iter().filter(|m| !m.test_only) {
        for written in paths_used(m, &known).written {
            if written.first().map(String::as_str) == Some("std")
                && written
                    .get(1)
                    .is_some_and(|second| IO_MODULES.contains(&second.as_str()))
            {
                found.push(format!("{}: {}", m.file.display(), written.join("::")));
            }
        }
    }
    found
}

#[test]
fn the_pure_crates_use_no_io_of_std() {
    let ws = Workspace::read();
    let modules = crate_modules(&ws);
    for package in PURE {
        let found = io_paths(&modules[package]);
        assert!(
            found.is_empty(),
            "{package} must do no I/O, yet uses:\n{}",
            found.join("\n")
        );
    }
    // The scan sees std::fs where a command reads a file.
    assert!(
        io_paths(&modules["provenant-engine"])
            .iter()
            .any(|p| p.ends_with("std::fs::read_to_string")),
        "the std scan cannot see provenant-engine's std::fs"
    );
}

/// Product files over `limit` lines.
fn files_over(files: &BTreeMap<String, Vec<SourceModule>>, limit: usize) -> Vec<String> {
    let mut long = Vec::new();
    for modules in files.values() {
        for m in modules {
            let lines = std::fs::read_to_string(&m.file)
                .expect("read a source file")
                .lines()
                .count();
            if lines > limit {
                long.push(format!("{}: {lines} lines", m.file.display()));
            }
        }
    }
    long
}

#[test]
fn no_product_source_file_does_a_modules_job() {
    let files = product_files(&Workspace::read());
    let long = files_over(&files, MAX_LINES);
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines (split them by job):\n{}",
        long.join("\n")
    );
    // The count sees long files when the limit is low.
    assert!(files_over(&files, 100).len() > 10);
}

/// `x.unwrap_or_else(|_| unreachable!(..))` and the like (a closure whose
/// whole body is `unreachable!` or `panic!`): a claim made without a check.
fn unchecked_claims(file: &syn::File) -> usize {
    struct Claims(usize);
    impl<'ast> Visit<'ast> for Claims {
        fn visit_item(&mut self, item: &'ast syn::Item) {
            let test_only = match item {
                syn::Item::Mod(m) => is_test_only(&m.attrs),
                syn::Item::Fn(f) => is_test_only(&f.attrs),
                syn::Item::Impl(i) => is_test_only(&i.attrs),
                _ => false,
            };
            if !test_only {
                syn::visit::visit_item(self, item);
            }
        }

        fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
            if call.method.to_string().starts_with("unwrap_or_else") {
                for arg in &call.args {
                    if let syn::Expr::Closure(closure) = arg
                        && only_a_panic(&closure.body)
                    {
                        self.0 += 1;
                    }
                }
            }
            syn::visit::visit_expr_method_call(self, call);
        }
    }
    fn only_a_panic(body: &syn::Expr) -> bool {
        let body = match body {
            syn::Expr::Block(b) if b.block.stmts.len() == 1 => match &b.block.stmts[0] {
                syn::Stmt::Expr(e, _) => e,
                syn::Stmt::Macro(m) => return is_panic(&m.mac),
                _ => return false,
            },
            other => other,
        };
        matches!(body, syn::Expr::Macro(m) if is_panic(&m.mac))
    }
    fn is_panic(mac: &syn::Macro) -> bool {
        mac.path
            .segments
            .last()
            .is_some_and(|s| s.ident == "unreachable" || s.ident == "panic")
    }
    let mut claims = Claims(0);
    claims.visit_file(file);
    claims.0
}

#[test]
fn every_crate_takes_the_workspace_lints_and_claims_nothing_unchecked() {
    let ws = Workspace::read();
    let root = std::fs::read_to_string(workspace_root().join("Cargo.toml")).expect("Cargo.toml");
    assert!(
        root.contains("[workspace.lints.rust]\nunsafe_code = \"forbid\""),
        "the workspace must forbid unsafe code"
    );
    for (name, p) in &ws.packages {
        let manifest = std::fs::read_to_string(&p.manifest).expect("a manifest");
        assert!(
            manifest.contains("[lints]\nworkspace = true"),
            "{name} does not take the workspace's lints"
        );
    }
    for modules in product_files(&ws).values() {
        for m in modules {
            assert_eq!(
                unchecked_claims(&parse(&m.file)),
                0,
                "{} claims something it does not check: unwrap_or_else with a closure that only panics",
                m.file.display()
            );
        }
    }
    // The check sees the pattern, also as rustfmt lays it out.
    let claims: syn::File = syn::parse_str(
        "fn f() { a.unwrap_or_else(|_| unreachable!(\"x\")); b.unwrap_or_else(|_e| {\n unreachable!(\"a long message\")\n}); c.unwrap_or_else(|| panic!()); d.unwrap_or_else(|e| e.into_inner()); }",
    )
    .expect("a snippet");
    assert_eq!(unchecked_claims(&claims), 3);
}
