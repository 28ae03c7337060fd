//! The architecture test: what ARCHITECTURE.md says about dependencies,
//! checked against `cargo metadata` and the sources, so that the rule
//! outlives the change that wrote it down.
//!
//! - Crates depend only on crates of a lower layer (the first `text` block
//!   under "## The dependency rule", top layer first).
//! - The pure crates (events, host, plugins) reach no async runtime,
//!   database, HTTP or NATS crate, even transitively.
//! - The example plugins use the host's public API and nothing else of the
//!   engine.
//! - Inside a crate, no module imports from a module that imports it back
//!   (no cycle among files), and inside the engine no module imports from a
//!   layer above its own (the second `text` block).
//! - No product source file is over 1,000 lines; every crate takes the
//!   workspace's lints (`unsafe_code = "forbid"`); product code claims
//!   nothing with `unwrap_or_else(|_| unreachable!(..))`.
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

/// What doing I/O means here: an async runtime, a database driver, an HTTP
/// stack, NATS (a name, or a name's prefix ending in `-`).
const IO_CRATES: [&str; 10] = [
    "tokio",
    "tokio-",
    "sqlx",
    "sqlx-",
    "axum",
    "hyper",
    "hyper-",
    "reqwest",
    "async-nats",
    "mio",
];

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
        for node in meta["resolve"]["nodes"].as_array().expect("resolve") {
            let id = node["id"].as_str().unwrap_or_default().to_owned();
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
        for dep in ws.direct(name) {
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
}

/// The modules of the crate rooted at `root`, by following its `mod x;`
/// declarations (test-only modules left out).
fn modules_of(root: &Path) -> Vec<SourceModule> {
    let mut found = Vec::new();
    let mut queue = vec![SourceModule {
        path: Vec::new(),
        file: root.to_path_buf(),
    }];
    while let Some(module) = queue.pop() {
        let text = std::fs::read_to_string(&module.file)
            .unwrap_or_else(|e| panic!("read {}: {e}", module.file.display()));
        let file = syn::parse_file(&text)
            .unwrap_or_else(|e| panic!("parse {}: {e}", module.file.display()));
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
        for item in &file.items {
            let syn::Item::Mod(m) = item else { continue };
            if m.content.is_some() || is_test_only(&m.attrs) {
                continue;
            }
            let name = m.ident.to_string();
            let flat = dir.join(format!("{name}.rs"));
            let nested = dir.join(&name).join("mod.rs");
            let file = if flat.exists() { flat } else { nested };
            let mut path = module.path.clone();
            path.push(name);
            queue.push(SourceModule { path, file });
        }
        found.push(module);
    }
    found
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

/// The `crate::`, `super::` and `self::` paths a file uses (outside
/// test-only items), made absolute within its crate.
struct PathsUsed {
    /// The module of the code being visited (inline modules push onto it).
    module: Vec<String>,
    found: Vec<Vec<String>>,
}

impl PathsUsed {
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
            _ => return None,
        }
        module.extend(rest.iter().cloned());
        Some(module)
    }

    fn record(&mut self, segments: Vec<String>) {
        if let Some(path) = self.absolute(&segments) {
            self.found.push(path);
        }
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
}

impl<'ast> Visit<'ast> for PathsUsed {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs: &[syn::Attribute] = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(u) => &u.attrs,
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
            syn::Item::Use(u) => self.use_tree(Vec::new(), &u.tree),
            _ => syn::visit::visit_item(self, item),
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.record(segments);
        syn::visit::visit_path(self, path);
    }
}

/// Module → the modules (files) of the same crate it uses.
fn module_graph(modules: &[SourceModule]) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let known: BTreeSet<&Vec<String>> = modules.iter().map(|m| &m.path).collect();
    let mut graph = BTreeMap::new();
    for module in modules {
        let text = std::fs::read_to_string(&module.file).expect("read a source file");
        let file = syn::parse_file(&text).expect("parse a source file");
        let mut used = PathsUsed {
            module: module.path.clone(),
            found: Vec::new(),
        };
        used.visit_file(&file);
        let mut targets = BTreeSet::new();
        for path in used.found {
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

/// Every product crate's modules, by crate name (the tests crate aside).
fn product_modules(ws: &Workspace) -> BTreeMap<String, Vec<SourceModule>> {
    ws.packages
        .iter()
        .filter(|(name, _)| name.as_str() != "provenant-tests")
        .map(|(name, p)| {
            let mut modules: Vec<SourceModule> =
                p.roots.iter().flat_map(|r| modules_of(r)).collect();
            modules.sort_by(|a, b| a.file.cmp(&b.file));
            modules.dedup_by(|a, b| a.file == b.file);
            (name.clone(), modules)
        })
        .collect()
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let ws = Workspace::read();
    let mut found = Vec::new();
    for (name, modules) in product_modules(&ws) {
        for cycle in cycles(&module_graph(&modules)) {
            found.push(format!("{name}: {}", cycle.join(" ⇄ ")));
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

#[test]
fn no_engine_module_imports_from_a_layer_above_it() {
    let ws = Workspace::read();
    let layers = layer_numbers(&layers_in_architecture_md(
        "## The layers inside provenant-engine",
    ));
    let modules = product_modules(&ws)
        .remove("provenant-engine")
        .expect("the engine");
    let graph = module_graph(&modules);
    let wrong = upward_module_imports(&graph, &layers);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The graph holds the imports that cross layers (or the check is
    // vacuous), and an import upwards is caught.
    let commands = vec!["commands".to_owned(), "serve".to_owned()];
    assert!(
        graph[&commands]
            .iter()
            .any(|t| t.first().map(String::as_str) == Some("service")),
        "the module graph misses commands::serve → service"
    );
    let mut upward = graph.clone();
    upward
        .entry(vec!["service".to_owned(), "http".to_owned()])
        .or_default()
        .insert(commands);
    assert_eq!(upward_module_imports(&upward, &layers).len(), 1);
}

#[test]
fn no_product_source_file_does_a_modules_job() {
    let ws = Workspace::read();
    let mut long = Vec::new();
    for modules in product_modules(&ws).values() {
        for m in modules {
            let lines = std::fs::read_to_string(&m.file)
                .expect("read a source file")
                .lines()
                .count();
            if lines > MAX_LINES {
                long.push(format!("{}: {lines} lines", m.file.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines (split them by job):\n{}",
        long.join("\n")
    );
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
    let pattern = ["unwrap_or_else(|_| ", "unreachable!("].concat();
    for modules in product_modules(&ws).values() {
        for m in modules {
            let text = std::fs::read_to_string(&m.file).expect("read a source file");
            assert!(
                !text.contains(&pattern),
                "{} claims something it does not check: {pattern}…",
                m.file.display()
            );
        }
    }
}
