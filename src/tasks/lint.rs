//! Consistency rules of the TASKS.md protocol, and the one mechanical fix (`blocks` mirrors
//! `depends_on`).

use std::collections::{HashMap, HashSet};

use super::model::{Diagnostic, Task, read_tasks};
use super::table::{TableError, TaskTable};

/// Runs every rule: cell formats first, then the rules across rows. Sorted by line.
pub fn lint(table: &TaskTable) -> (Vec<Task>, Vec<Diagnostic>) {
    let (tasks, mut diags) = read_tasks(table);
    let by_id = index(&tasks);
    duplicate_ids(&tasks, &by_id, &mut diags);
    unknown_references(&tasks, &by_id, &mut diags);
    if table.column("blocks").is_some() {
        blocks_mirror(&tasks, &by_id, &mut diags);
    }
    cycles(&tasks, &by_id, &mut diags);
    timestamps(&tasks, &mut diags);
    diags.sort_by_key(|d| d.line);
    (tasks, diags)
}

/// First row of each id; later duplicates are reported, not indexed.
pub fn index(tasks: &[Task]) -> HashMap<&str, usize> {
    let mut by_id = HashMap::with_capacity(tasks.len());
    for (i, t) in tasks.iter().enumerate() {
        if !t.id.is_empty() {
            by_id.entry(t.id.as_str()).or_insert(i);
        }
    }
    by_id
}

fn diag(line: usize, column: Option<&str>, rule: &'static str, message: String) -> Diagnostic {
    Diagnostic {
        line,
        column: column.map(str::to_owned),
        rule,
        message,
    }
}

fn duplicate_ids(tasks: &[Task], by_id: &HashMap<&str, usize>, out: &mut Vec<Diagnostic>) {
    for (i, t) in tasks.iter().enumerate() {
        if let Some(&first) = by_id.get(t.id.as_str())
            && first != i
        {
            out.push(diag(
                t.line,
                Some("id"),
                "duplicate-id",
                format!(
                    "id `{}` is already used on line {}",
                    t.id, tasks[first].line
                ),
            ));
        }
    }
}

fn unknown_references(tasks: &[Task], by_id: &HashMap<&str, usize>, out: &mut Vec<Diagnostic>) {
    for t in tasks {
        for (column, ids) in [("depends_on", &t.depends_on), ("blocks", &t.blocks)] {
            for id in ids {
                if !by_id.contains_key(id.as_str()) {
                    out.push(diag(
                        t.line,
                        Some(column),
                        "unknown-reference",
                        format!("`{id}` is not a task in this table"),
                    ));
                }
            }
        }
    }
}

fn blocks_mirror(tasks: &[Task], by_id: &HashMap<&str, usize>, out: &mut Vec<Diagnostic>) {
    for t in tasks {
        for dep in &t.depends_on {
            if let Some(&d) = by_id.get(dep.as_str())
                && !tasks[d].blocks.contains(&t.id)
            {
                out.push(diag(
                    tasks[d].line,
                    Some("blocks"),
                    "blocks-mirror",
                    format!(
                        "`{}` should list `{}` in blocks, because `{}` depends on it (fix: tasks lint --fix)",
                        tasks[d].id, t.id, t.id
                    ),
                ));
            }
        }
        for blocked in &t.blocks {
            if let Some(&b) = by_id.get(blocked.as_str())
                && !tasks[b].depends_on.contains(&t.id)
            {
                out.push(diag(
                    t.line,
                    Some("blocks"),
                    "blocks-mirror",
                    format!(
                        "`{}` lists `{blocked}` in blocks, but `{blocked}` does not depend on it (fix: tasks lint --fix)",
                        t.id
                    ),
                ));
            }
        }
    }
}

/// Reports every dependency cycle once, naming its members in order (`A → B → A`).
fn cycles(tasks: &[Task], by_id: &HashMap<&str, usize>, out: &mut Vec<Diagnostic>) {
    let edges: Vec<Vec<usize>> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if by_id.get(t.id.as_str()) != Some(&i) {
                return Vec::new(); // duplicates take no part in the graph
            }
            t.depends_on
                .iter()
                .filter_map(|d| by_id.get(d.as_str()).copied())
                .collect()
        })
        .collect();
    for scc in strongly_connected(&edges) {
        let start = *scc.iter().min().unwrap_or(&0);
        let is_cycle = scc.len() > 1 || edges[start].contains(&start);
        if !is_cycle {
            continue;
        }
        let members: HashSet<usize> = scc.iter().copied().collect();
        let path = cycle_through(start, &edges, &members);
        let names: Vec<&str> = path.iter().map(|&i| tasks[i].id.as_str()).collect();
        out.push(diag(
            tasks[start].line,
            Some("depends_on"),
            "cycle",
            format!("dependency cycle: {}", names.join(" → ")),
        ));
    }
}

/// Shortest path from `start` back to itself inside one strongly connected component.
fn cycle_through(start: usize, edges: &[Vec<usize>], members: &HashSet<usize>) -> Vec<usize> {
    let mut parent: HashMap<usize, usize> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        for &m in &edges[n] {
            if !members.contains(&m) {
                continue;
            }
            if m == start {
                // Walk the parents back from `n`, then read the path forwards.
                let mut path = vec![n];
                let mut cur = n;
                while cur != start {
                    let Some(&p) = parent.get(&cur) else { break };
                    path.push(p);
                    cur = p;
                }
                path.reverse();
                path.push(start);
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(m) {
                e.insert(n);
                queue.push_back(m);
            }
        }
    }
    vec![start, start]
}

/// Tarjan's algorithm without recursion, so a 10,000-long dependency chain cannot overflow.
fn strongly_connected(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    const UNSEEN: usize = usize::MAX;
    let n = edges.len();
    let (mut index, mut low) = (vec![UNSEEN; n], vec![0; n]);
    let mut on_stack = vec![false; n];
    let (mut stack, mut out, mut next) = (Vec::new(), Vec::new(), 0);
    for root in 0..n {
        if index[root] != UNSEEN {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(top) = work.last_mut() {
            let v = top.0;
            if let Some(&w) = edges[v].get(top.1) {
                top.1 += 1;
                if index[w] == UNSEEN {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut scc = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    scc.push(w);
                    if w == v {
                        break;
                    }
                }
                out.push(scc);
            }
        }
    }
    out
}

fn timestamps(tasks: &[Task], out: &mut Vec<Diagnostic>) {
    for t in tasks {
        let Some(done_at) = t.completed_at else {
            continue;
        };
        if let Some(status) = t.status
            && !status.is_terminal()
        {
            out.push(diag(
                t.line,
                Some("completed_at"),
                "completed-at-non-terminal",
                format!(
                    "completed_at is set but status is `{status}`; only done or failed tasks are completed"
                ),
            ));
        }
        if let Some(started) = t.started_at
            && done_at < started
        {
            out.push(diag(
                t.line,
                Some("completed_at"),
                "completed-before-started",
                format!(
                    "completed_at {} is before started_at {}",
                    done_at.to_rfc3339(),
                    started.to_rfc3339()
                ),
            ));
        }
    }
}

/// Rewrites `blocks` so it mirrors `depends_on` exactly; returns the ids whose row changed.
///
/// Existing entries keep their order; missing ones are appended in table order.
pub fn fix_blocks(table: &mut TaskTable, tasks: &[Task]) -> Result<Vec<String>, TableError> {
    if table.column("blocks").is_none() {
        return Ok(Vec::new());
    }
    let by_id = index(tasks);
    let mut wanted: Vec<Vec<&str>> = vec![Vec::new(); tasks.len()];
    for t in tasks {
        if by_id
            .get(t.id.as_str())
            .is_none_or(|&i| tasks[i].row != t.row)
        {
            continue;
        }
        for dep in &t.depends_on {
            if let Some(&d) = by_id.get(dep.as_str())
                && !wanted[d].contains(&t.id.as_str())
            {
                wanted[d].push(&t.id);
            }
        }
    }
    let mut changed = Vec::new();
    for (i, t) in tasks.iter().enumerate() {
        if by_id.get(t.id.as_str()) != Some(&i) {
            continue;
        }
        let mut blocks: Vec<&str> = t
            .blocks
            .iter()
            .map(String::as_str)
            .filter(|b| wanted[i].contains(b))
            .collect();
        for w in &wanted[i] {
            if !blocks.contains(w) {
                blocks.push(w);
            }
        }
        if table.set(t.row, "blocks", &blocks.join(", "))? {
            changed.push(t.id.clone());
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tarjan_finds_cycles_and_singletons() {
        let edges = vec![vec![1], vec![2], vec![0], vec![3], vec![]];
        let mut sccs: Vec<Vec<usize>> = strongly_connected(&edges)
            .into_iter()
            .map(|mut s| {
                s.sort();
                s
            })
            .collect();
        sccs.sort();
        assert_eq!(sccs, vec![vec![0, 1, 2], vec![3], vec![4]]);
    }

    #[test]
    fn cycle_path_is_in_order() {
        let edges = vec![vec![1], vec![2], vec![0]];
        let members = HashSet::from([0, 1, 2]);
        assert_eq!(cycle_through(0, &edges, &members), vec![0, 1, 2, 0]);
        assert_eq!(
            cycle_through(0, &[vec![0]], &HashSet::from([0])),
            vec![0, 0]
        );
    }
}
