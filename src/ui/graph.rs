//! The dependency graph, laid out on the server in layers: a task sits one layer right of its
//! deepest dependency, and within a layer near the mean position of what it depends on, so
//! edges mostly run straight. Edges from a task not yet done are drawn as blocking.

use std::collections::HashMap;

use maud::{Markup, html};

use crate::tasks::{Status, Task};

/// The most tasks drawn: beyond it the graph keeps the unfinished tasks and what they wait on.
pub const MAX_NODES: usize = 300;

const W: i64 = 150;
const H: i64 = 34;
const GAP_X: i64 = 70;
const GAP_Y: i64 = 14;
const PAD: i64 = 16;

/// A graph edge: `from` must be done before `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    /// `from` is not done yet: `to` is blocked by it.
    pub blocking: bool,
    /// The edge closes a dependency cycle.
    pub cycle: bool,
}

/// Nodes (indexes into the tasks) with their layer and place in it, and the edges between them.
#[derive(Debug, Default)]
pub struct Layout {
    pub nodes: Vec<(usize, usize, usize)>,
    pub edges: Vec<Edge>,
    /// Tasks left out to keep the graph readable.
    pub left_out: usize,
}

/// Which tasks to draw: all of them, or beyond [`MAX_NODES`] the unfinished ones and the tasks
/// they depend on directly.
fn chosen(tasks: &[Task]) -> Vec<usize> {
    if tasks.len() <= MAX_NODES {
        return (0..tasks.len()).collect();
    }
    let index: HashMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    let mut keep = vec![false; tasks.len()];
    let mut n = 0;
    for (i, t) in tasks.iter().enumerate() {
        if t.is_done() || n >= MAX_NODES {
            continue;
        }
        if !keep[i] {
            keep[i] = true;
            n += 1;
        }
        for d in &t.depends_on {
            if let Some(&j) = index.get(d.as_str())
                && !keep[j]
                && n < MAX_NODES
            {
                keep[j] = true;
                n += 1;
            }
        }
    }
    (0..tasks.len()).filter(|&i| keep[i]).collect()
}

/// Lays the chosen tasks out in layers.
pub fn layout(tasks: &[Task]) -> Layout {
    let chosen = chosen(tasks);
    let slot: HashMap<&str, usize> = chosen.iter().map(|&i| (tasks[i].id.as_str(), i)).collect();
    // Dependencies within the drawing, by task index.
    let deps: HashMap<usize, Vec<usize>> = chosen
        .iter()
        .map(|&i| {
            let d = tasks[i]
                .depends_on
                .iter()
                .filter_map(|d| slot.get(d.as_str()).copied())
                .filter(|&j| j != i)
                .collect();
            (i, d)
        })
        .collect();
    // Longest path from the roots, depth-first without recursion; an edge back onto the path
    // being walked closes a cycle and is left out of the layering.
    let mut layer: HashMap<usize, usize> = HashMap::new();
    let mut cycle_edges: Vec<(usize, usize)> = Vec::new();
    let mut on_path = vec![false; tasks.len()];
    for &root in &chosen {
        if layer.contains_key(&root) {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        on_path[root] = true;
        while let Some(&mut (v, ref mut next)) = stack.last_mut() {
            let ds = &deps[&v];
            if *next < ds.len() {
                let d = ds[*next];
                *next += 1;
                if on_path[d] {
                    cycle_edges.push((d, v));
                } else if !layer.contains_key(&d) {
                    on_path[d] = true;
                    stack.push((d, 0));
                }
                continue;
            }
            let l = ds
                .iter()
                .filter(|d| !cycle_edges.contains(&(**d, v)))
                .filter_map(|d| layer.get(d))
                .map(|l| l + 1)
                .max()
                .unwrap_or(0);
            layer.insert(v, l);
            on_path[v] = false;
            stack.pop();
        }
    }
    let depth = layer.values().copied().max().map_or(0, |m| m + 1);
    let mut layers: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for &i in &chosen {
        layers[layer[&i]].push(i);
    }
    // Order each layer by the mean place of its dependencies in the layers before.
    let mut place: HashMap<usize, usize> = HashMap::new();
    for l in layers.iter_mut() {
        let key = |i: &usize| -> (u64, usize) {
            let ps: Vec<usize> = deps[i]
                .iter()
                .filter_map(|d| place.get(d))
                .copied()
                .collect();
            let mean = if ps.is_empty() {
                u64::MAX
            } else {
                (ps.iter().sum::<usize>() as u64 * 1000) / ps.len() as u64
            };
            (mean, *i)
        };
        l.sort_by_key(key);
        for (p, &i) in l.iter().enumerate() {
            place.insert(i, p);
        }
    }
    let mut nodes = Vec::with_capacity(chosen.len());
    for (li, l) in layers.iter().enumerate() {
        for (p, &i) in l.iter().enumerate() {
            nodes.push((i, li, p));
        }
    }
    let mut edges = Vec::new();
    for &to in &chosen {
        for &from in &deps[&to] {
            edges.push(Edge {
                from,
                to,
                blocking: !tasks[from].is_done(),
                cycle: cycle_edges.contains(&(from, to)),
            });
        }
    }
    Layout {
        nodes,
        edges,
        left_out: tasks.len() - chosen.len(),
    }
}

fn status_class(s: Option<Status>) -> &'static str {
    s.map_or("unknown", Status::as_str)
}

fn ellipsis(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The graph as inline SVG; every text escaped by the template.
pub fn svg(tasks: &[Task]) -> Markup {
    let g = layout(tasks);
    if g.nodes.is_empty() {
        return html! { p.empty { "No tasks." } };
    }
    let at: HashMap<usize, (i64, i64)> = g
        .nodes
        .iter()
        .map(|&(i, l, p)| {
            (
                i,
                (PAD + l as i64 * (W + GAP_X), PAD + p as i64 * (H + GAP_Y)),
            )
        })
        .collect();
    let width = at.values().map(|p| p.0).max().unwrap_or(0) + W + PAD;
    let height = at.values().map(|p| p.1).max().unwrap_or(0) + H + PAD;
    html! {
        figure.graph {
            svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="Dependency graph"
                width=(width) height=(height) viewBox={ "0 0 " (width) " " (height) } {
                defs {
                    marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse" {
                        path d="M 0 0 L 10 5 L 0 10 z" {}
                    }
                }
                @for e in &g.edges {
                    @let (x1, y1) = (at[&e.from].0 + W, at[&e.from].1 + H / 2);
                    @let (x2, y2) = (at[&e.to].0, at[&e.to].1 + H / 2);
                    @let mid = if x2 > x1 { (x1 + x2) / 2 } else { x1 + GAP_X / 2 };
                    path class={ "edge" @if e.blocking { " blocking" } @else { " met" } @if e.cycle { " cycle" } }
                        data-from=(tasks[e.from].id) data-to=(tasks[e.to].id)
                        marker-end="url(#arrow)"
                        d={ "M " (x1) " " (y1) " C " (mid) " " (y1) ", " (mid) " " (y2) ", " (x2) " " (y2) } {}
                }
                @for &(i, _, _) in &g.nodes {
                    @let t = &tasks[i];
                    @let (x, y) = at[&i];
                    a href={ "#task-" (t.id) } {
                        g class={ "node " (status_class(t.status)) } data-id=(t.id) {
                            title { (t.id) " — " (t.description) " (" (status_class(t.status)) ")" }
                            rect x=(x) y=(y) width=(W) height=(H) rx="5" {}
                            text x=(x + 8) y=(y + 14) class="id" { (t.id) }
                            text x=(x + 8) y=(y + 27) class="desc" { (ellipsis(&t.description, 22)) }
                        }
                    }
                }
            }
            @if g.left_out > 0 {
                figcaption { (g.left_out) " done tasks left out; the graph shows what is open and what it waits on." }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::{TaskTable, read_tasks};

    fn tasks(rows: &[(&str, &str, &str)]) -> Vec<Task> {
        let mut text = String::from(
            "# Tasks\n\n| id | status | description | depends_on |\n|---|---|---|---|\n",
        );
        for (id, status, deps) in rows {
            text.push_str(&format!("| {id} | {status} | d | {deps} |\n"));
        }
        read_tasks(&TaskTable::parse(&text).unwrap()).0
    }

    #[test]
    fn layers_follow_the_longest_dependency_chain() {
        let t = tasks(&[
            ("A-X-001", "done", ""),
            ("A-X-002", "in-progress", "A-X-001"),
            ("A-X-003", "not-started", "A-X-001, A-X-002"),
        ]);
        let g = layout(&t);
        let layer_of = |i: usize| g.nodes.iter().find(|n| n.0 == i).unwrap().1;
        assert_eq!((layer_of(0), layer_of(1), layer_of(2)), (0, 1, 2));
        let blocking: Vec<_> = g.edges.iter().filter(|e| e.blocking).collect();
        assert_eq!(
            blocking.len(),
            1,
            "only the edge from the unfinished task blocks"
        );
        assert_eq!((blocking[0].from, blocking[0].to), (1, 2));
    }

    #[test]
    fn a_cycle_is_drawn_and_marked_without_looping() {
        let t = tasks(&[
            ("A-X-001", "not-started", "A-X-002"),
            ("A-X-002", "not-started", "A-X-001"),
        ]);
        let g = layout(&t);
        assert_eq!(g.nodes.len(), 2);
        assert_eq!(g.edges.iter().filter(|e| e.cycle).count(), 1);
    }

    #[test]
    fn big_tables_keep_the_open_tasks() {
        let rows: Vec<(String, &str, String)> = (0..1000)
            .map(|i| {
                let status = if i < 990 { "done" } else { "not-started" };
                let dep = if i > 0 {
                    format!("A-X-{:03}", i - 1)
                } else {
                    String::new()
                };
                (format!("A-X-{i:03}"), status, dep)
            })
            .collect();
        let refs: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|(a, b, c)| (a.as_str(), *b, c.as_str()))
            .collect();
        let g = layout(&tasks(&refs));
        assert_eq!(
            g.nodes.len(),
            11,
            "ten open tasks and the done one they wait on"
        );
        assert_eq!(g.left_out, 989);
    }
}
