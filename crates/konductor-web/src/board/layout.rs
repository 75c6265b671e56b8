//! The layered layout of a step graph: where each node and edge of the SVG goes.
//!
//! Pure geometry, no markup: layer = longest path from a leaf, long edges routed through
//! the layers they cross, layers ordered by barycenter sweeps to reduce crossings, nodes
//! placed by isotonic regression, edges given ports along their nodes' sides.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use konductor_core::plan::StepKind;
use konductor_core::report::StepReport;

use super::text::r;

const NODE_W: f64 = 172.0;
const SMALL_W: f64 = 124.0;
pub(super) const GAP_X: f64 = 38.0;
pub(super) const GAP_Y: f64 = 18.0;
const DUMMY_GAP: f64 = 9.0;
const MARGIN: f64 = 12.0;
pub(super) const ARROW: f64 = 7.0;
/// Advance of one character of the 12px monospace step-name font (0.6 em, rounded up).
const NAME_CHAR_W: f64 = 7.3;
/// Average advance of one character of the 11px status line.
pub(super) const STATUS_CHAR_W: f64 = 6.4;
/// Graphs up to this width shrink to the page; wider ones scroll.
pub(super) const FIT_MAX: f64 = 1750.0;

/// Where one step is drawn.
#[derive(Debug, Clone)]
pub(super) struct NodeBox {
    pub(super) x: f64,
    pub(super) y: f64,
    pub(super) w: f64,
    pub(super) h: f64,
    pub(super) pad: f64,
    pub(super) lines: Vec<String>,
}

/// One drawn edge: the curve and its arrowhead tip.
#[derive(Debug, Clone)]
pub(super) struct EdgeDraw {
    pub(super) from: usize,
    pub(super) path: String,
    pub(super) tip: (f64, f64),
}

/// A step graph laid out: its size, each step's layer and box, and the edges.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    pub(super) width: f64,
    pub(super) height: f64,
    pub(super) layer: Vec<usize>,
    pub(super) boxes: Vec<NodeBox>,
    pub(super) edges: Vec<EdgeDraw>,
}

impl Layout {
    /// How many layers (columns) the graph has.
    pub(super) fn layers(&self) -> usize {
        self.layer.iter().max().map_or(0, |m| m + 1)
    }
}

/// A node or a routing point of a long edge in one layer.
struct Item {
    layer: usize,
    node: Option<usize>,
    h: f64,
    up: Vec<usize>,
    down: Vec<usize>,
}

/// The layer of each step: the longest path from a leaf. Cycles (which a validated graph
/// never has) are cut off at `n - 1` so that the layout stays bounded.
fn layers(preds: &[Vec<usize>]) -> Vec<usize> {
    let n = preds.len();
    let cap = n.saturating_sub(1);
    let mut layer = vec![0usize; n];
    for _ in 0..n {
        let mut changed = false;
        for (i, ps) in preds.iter().enumerate() {
            let l = ps.iter().map(|&p| layer[p] + 1).max().unwrap_or(0).min(cap);
            if l > layer[i] {
                layer[i] = l;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    layer
}

pub(super) fn layout(steps: &[StepReport]) -> Layout {
    let n = steps.len();
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, s) in steps.iter().enumerate() {
        index.entry(s.name.as_str()).or_insert(i);
    }
    let preds: Vec<Vec<usize>> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut v: Vec<usize> = Vec::new();
            for d in &s.needs {
                if let Some(&p) = index.get(d.as_str()) {
                    if p != i && !v.contains(&p) {
                        v.push(p);
                    }
                }
            }
            v
        })
        .collect();
    let layer = layers(&preds);
    let nlayers = layer.iter().max().map_or(0, |m| m + 1);

    // Node sizes and wrapped names.
    let mut boxes: Vec<NodeBox> = steps
        .iter()
        .map(|s| {
            let (w, pad) = match s.kind {
                StepKind::Job => (NODE_W, 10.0),
                StepKind::Manual => (NODE_W, 17.0),
                StepKind::Virtual | StepKind::Target => (SMALL_W, 13.0),
            };
            let max = ((w - 2.0 * pad) / NAME_CHAR_W).floor().max(4.0) as usize;
            let lines = wrap_name(&s.name, max, usize::MAX);
            let h = 31.0 + 15.0 * lines.len() as f64;
            NodeBox {
                x: 0.0,
                y: 0.0,
                w,
                h,
                pad,
                lines,
            }
        })
        .collect();

    // Items: nodes first, then one routing point per layer crossed by a long edge.
    let mut items: Vec<Item> = (0..n)
        .map(|i| Item {
            layer: layer[i],
            node: Some(i),
            h: boxes[i].h,
            up: Vec::new(),
            down: Vec::new(),
        })
        .collect();
    // (from, to, routing points)
    let mut chains: Vec<(usize, usize, Vec<usize>)> = Vec::new();
    for (i, ps) in preds.iter().enumerate() {
        for &p in ps {
            let mut via = Vec::new();
            if layer[p] < layer[i] {
                let mut prev = p;
                for l in layer[p] + 1..layer[i] {
                    let id = items.len();
                    items.push(Item {
                        layer: l,
                        node: None,
                        h: 0.0,
                        up: vec![prev],
                        down: Vec::new(),
                    });
                    items[prev].down.push(id);
                    via.push(id);
                    prev = id;
                }
                items[prev].down.push(i);
                items[i].up.push(prev);
            }
            chains.push((p, i, via));
        }
    }

    // Order within layers: barycenter sweeps, keeping the order with fewest crossings.
    let mut order: Vec<Vec<usize>> = vec![Vec::new(); nlayers];
    for (id, it) in items.iter().enumerate() {
        order[it.layer].push(id);
    }
    let mut best = order.clone();
    let mut best_crossings = crossings(&order, &items);
    for round in 0..12 {
        if best_crossings == 0 {
            break;
        }
        sweep(&mut order, &items, round % 2 == 0);
        let c = crossings(&order, &items);
        if c < best_crossings {
            best_crossings = c;
            best = order.clone();
        }
    }
    let order = best;

    // Vertical positions (centers).
    let sep = |a: usize, b: usize| {
        let gap = if items[a].node.is_some() && items[b].node.is_some() {
            GAP_Y
        } else {
            DUMMY_GAP
        };
        (items[a].h + items[b].h) / 2.0 + gap
    };
    let mut y = vec![0.0f64; items.len()];
    for ord in &order {
        let mut acc = 0.0;
        let mut offs = Vec::with_capacity(ord.len());
        for (k, &id) in ord.iter().enumerate() {
            if k > 0 {
                acc += sep(ord[k - 1], id);
            }
            offs.push(acc);
        }
        for (k, &id) in ord.iter().enumerate() {
            y[id] = offs[k] - acc / 2.0;
        }
    }
    let place = |y: &mut Vec<f64>, l: usize, up: bool, down: bool| {
        let ord = &order[l];
        if ord.is_empty() {
            return;
        }
        let desired: Vec<f64> = ord
            .iter()
            .map(|&id| {
                let mut nb: Vec<usize> = Vec::new();
                if up {
                    nb.extend(&items[id].up);
                }
                if down {
                    nb.extend(&items[id].down);
                }
                if nb.is_empty() {
                    y[id]
                } else {
                    nb.iter().map(|&x| y[x]).sum::<f64>() / nb.len() as f64
                }
            })
            .collect();
        let seps: Vec<f64> = ord.windows(2).map(|p| sep(p[0], p[1])).collect();
        let placed = isotonic_place(&desired, &seps);
        for (k, &id) in ord.iter().enumerate() {
            y[id] = placed[k];
        }
    };
    for round in 0..4 {
        if round % 2 == 0 {
            for l in 1..nlayers {
                place(&mut y, l, true, false);
            }
        } else {
            for l in (0..nlayers.saturating_sub(1)).rev() {
                place(&mut y, l, false, true);
            }
        }
    }
    for _ in 0..2 {
        for l in 0..nlayers {
            place(&mut y, l, true, true);
        }
    }
    let top = items
        .iter()
        .enumerate()
        .map(|(id, it)| y[id] - it.h / 2.0)
        .fold(f64::INFINITY, f64::min);
    let shift = if top.is_finite() { MARGIN - top } else { 0.0 };
    for v in &mut y {
        *v += shift;
    }
    let height = items
        .iter()
        .enumerate()
        .map(|(id, it)| y[id] + it.h / 2.0)
        .fold(0.0f64, f64::max)
        + MARGIN;

    // Horizontal positions: one column per layer.
    let mut col_w = vec![0.0f64; nlayers];
    for (i, b) in boxes.iter().enumerate() {
        col_w[layer[i]] = col_w[layer[i]].max(b.w);
    }
    let mut col_x = vec![0.0f64; nlayers];
    let mut x = MARGIN;
    for l in 0..nlayers {
        col_x[l] = x;
        x += col_w[l] + GAP_X;
    }
    let width = if nlayers == 0 {
        2.0 * MARGIN
    } else {
        x - GAP_X + MARGIN
    };
    for (i, b) in boxes.iter_mut().enumerate() {
        b.x = col_x[layer[i]] + (col_w[layer[i]] - b.w) / 2.0;
        b.y = y[i] - b.h / 2.0;
    }

    // Ports: spread a node's edges along its side, in the order of their other ends.
    let mut out_port = vec![0.0f64; chains.len()];
    let mut in_port = vec![0.0f64; chains.len()];
    for (i, b) in boxes.iter().enumerate() {
        let spread = |mut ends: Vec<(f64, usize)>, ports: &mut Vec<f64>| {
            ends.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let k = ends.len();
            let step = if k <= 1 || steps[i].kind == StepKind::Manual {
                0.0
            } else {
                ((b.h - 18.0) / (k - 1) as f64).min(8.0)
            };
            for (j, (_, ci)) in ends.into_iter().enumerate() {
                ports[ci] = y[i] + (j as f64 - (k - 1) as f64 / 2.0) * step;
            }
        };
        let outs: Vec<(f64, usize)> = chains
            .iter()
            .enumerate()
            .filter(|(_, c)| c.0 == i)
            .map(|(ci, c)| (y[c.2.first().copied().unwrap_or(c.1)], ci))
            .collect();
        spread(outs, &mut out_port);
        let ins: Vec<(f64, usize)> = chains
            .iter()
            .enumerate()
            .filter(|(_, c)| c.1 == i)
            .map(|(ci, c)| (y[c.2.last().copied().unwrap_or(c.0)], ci))
            .collect();
        spread(ins, &mut in_port);
    }

    let edges = chains
        .iter()
        .enumerate()
        .map(|(ci, (p, q, via))| {
            let a = &boxes[*p];
            let b = &boxes[*q];
            let mut pts = vec![(a.x + a.w, out_port[ci])];
            for &d in via {
                let l = items[d].layer;
                pts.push((col_x[l], y[d]));
                pts.push((col_x[l] + col_w[l], y[d]));
            }
            let tip = (b.x, in_port[ci]);
            pts.push((tip.0 - ARROW + 1.0, tip.1));
            let mut path = format!("M{} {}", r(pts[0].0), r(pts[0].1));
            for k in 1..pts.len() {
                let (a, b) = (pts[k - 1], pts[k]);
                if k % 2 == 1 {
                    let dx = ((b.0 - a.0) / 2.0).abs().max(24.0);
                    let _ = write!(
                        path,
                        "C{} {} {} {} {} {}",
                        r(a.0 + dx),
                        r(a.1),
                        r(b.0 - dx),
                        r(b.1),
                        r(b.0),
                        r(b.1)
                    );
                } else {
                    let _ = write!(path, "H{}", r(b.0));
                }
            }
            EdgeDraw {
                from: *p,
                path,
                tip,
            }
        })
        .collect();

    Layout {
        width,
        height: height.max(2.0 * MARGIN),
        layer,
        boxes,
        edges,
    }
}

/// One barycenter sweep, down (by the layer above) or up (by the layer below).
fn sweep(order: &mut [Vec<usize>], items: &[Item], down: bool) {
    let mut pos = vec![0.0f64; items.len()];
    for ord in order.iter() {
        for (k, &id) in ord.iter().enumerate() {
            pos[id] = k as f64;
        }
    }
    let nl = order.len();
    let layers: Vec<usize> = if down {
        (1..nl).collect()
    } else {
        (0..nl.saturating_sub(1)).rev().collect()
    };
    for l in layers {
        let mut keyed: Vec<(f64, f64, usize)> = order[l]
            .iter()
            .map(|&id| {
                let nb = if down { &items[id].up } else { &items[id].down };
                let key = if nb.is_empty() {
                    pos[id]
                } else {
                    nb.iter().map(|&x| pos[x]).sum::<f64>() / nb.len() as f64
                };
                (key, pos[id], id)
            })
            .collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        order[l] = keyed.into_iter().map(|k| k.2).collect();
        for (k, &id) in order[l].iter().enumerate() {
            pos[id] = k as f64;
        }
    }
}

/// Edge crossings between adjacent layers.
fn crossings(order: &[Vec<usize>], items: &[Item]) -> usize {
    let mut pos = vec![0usize; items.len()];
    for ord in order {
        for (k, &id) in ord.iter().enumerate() {
            pos[id] = k;
        }
    }
    let mut total = 0;
    for ord in order {
        let mut pairs: Vec<(usize, usize)> = Vec::new();
        for &u in ord {
            for &v in &items[u].down {
                pairs.push((pos[u], pos[v]));
            }
        }
        pairs.sort_unstable();
        for (k, a) in pairs.iter().enumerate() {
            total += pairs[k + 1..]
                .iter()
                .filter(|b| b.0 > a.0 && b.1 < a.1)
                .count();
        }
    }
    total
}

/// Positions as close as possible (least squares) to `desired`, in order, with at least
/// `seps[k]` between item `k` and `k + 1`: isotonic regression by pool-adjacent-violators.
pub(super) fn isotonic_place(desired: &[f64], seps: &[f64]) -> Vec<f64> {
    let mut offs = Vec::with_capacity(desired.len());
    let mut acc = 0.0;
    for k in 0..desired.len() {
        if k > 0 {
            acc += seps[k - 1];
        }
        offs.push(acc);
    }
    // blocks of (mean, count)
    let mut blocks: Vec<(f64, usize)> = Vec::new();
    for (d, off) in desired.iter().zip(&offs) {
        blocks.push((d - off, 1));
        while blocks.len() > 1 {
            let (m2, c2) = blocks[blocks.len() - 1];
            let (m1, c1) = blocks[blocks.len() - 2];
            if m1 <= m2 {
                break;
            }
            blocks.pop();
            let last = blocks.len() - 1;
            blocks[last] = (
                (m1 * c1 as f64 + m2 * c2 as f64) / (c1 + c2) as f64,
                c1 + c2,
            );
        }
    }
    let mut out = Vec::with_capacity(desired.len());
    for (m, c) in blocks {
        for _ in 0..c {
            out.push(m + offs[out.len()]);
        }
    }
    out
}

/// Break a step name into at most `max_lines` lines of at most `max` characters,
/// preferably after `_`, `-`, `.` or `/`; the last line ends in `…` if it doesn't fit.
pub(super) fn wrap_name(name: &str, max: usize, max_lines: usize) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut lines = Vec::new();
    let mut start = 0;
    while start < chars.len() && lines.len() < max_lines {
        let rest = &chars[start..];
        if rest.len() <= max {
            lines.push(rest.iter().collect());
            break;
        }
        if lines.len() + 1 == max_lines {
            let mut s: String = rest[..max - 1].iter().collect();
            s.push('…');
            lines.push(s);
            break;
        }
        let cut = rest[..max]
            .iter()
            .rposition(|c| matches!(c, '_' | '-' | '.' | '/' | ' ' | ':'))
            .map(|p| p + 1)
            .filter(|&p| p >= max / 3)
            .unwrap_or(max);
        lines.push(rest[..cut].iter().collect());
        start += cut;
    }
    if lines.is_empty() {
        lines.push(String::new());
    }
    lines
}
