//! Dense f32 weights read in their own layout — `nn.Linear`'s (outputs × inputs, a stack of
//! them by outputs) or GPT-2's `Conv1D` (inputs × outputs) — and turned into the packed groups'
//! layout (`dense_panels.rs`: for every input position, 64 outputs' weights side by side) a
//! span at a time: to pack a weight once ([`pack`]), and for a batch against a weight too large
//! to keep packed ([`RowGroups`]), where each task transposes one span of one group into a
//! scratch of L2 size and passes all of its rows over it, prefetching the next group's rows
//! meanwhile. Before, such a batch packed the whole weight for the call first: BERT-base's
//! 8 × 128 forward read and wrote 311 MB of weights that way, 7% of its time.
//!
//! The transposition moves values without arithmetic, and the passes are the dense kernel's
//! (each output's products added in position order from zero, carried from span to span), so a
//! product has the bits of the packed one.

use std::ops::Range;

use bytemuck::cast_slice;
use candle_core::Tensor;

use super::dense_pass::{pass_kernel, span_passes, PassKernel, GROUP};
use super::gemm::with_f32;
use super::half_groups::{span_for, GroupSums};

/// A dense weight (or a stack of them) as its tensors hold it.
#[derive(Clone, Copy)]
pub(super) struct Rows<'a> {
    /// `nn.Linear` parts stacked by outputs (each `outputs_i × inputs`), or one `Conv1D`
    /// weight (`inputs × outputs`).
    pub parts: &'a [&'a [f32]],
    pub outputs: usize,
    pub inputs: usize,
    /// Whether the parts are in `nn.Linear`'s layout.
    pub out_in: bool,
}

impl<'a> Rows<'a> {
    /// Output `o`'s weights (`inputs` of them) in `nn.Linear`'s layout, `None` past the last.
    fn row(&self, o: usize) -> Option<&'a [f32]> {
        let mut at = o * self.inputs;
        for part in self.parts {
            if at < part.len() {
                return Some(&part[at..at + self.inputs]);
            }
            at -= part.len();
        }
        None
    }

    /// Writes input positions `at` of group `g` into `block` (`at.len() × 64`): output
    /// `64g + j`'s weight at position `at.start + k` to `block[k·64 + j]`, zero past the last
    /// output.
    pub fn transpose(&self, g: usize, at: Range<usize>, block: &mut [f32]) {
        let steps = at.len();
        assert_eq!(block.len(), steps * GROUP, "a block of {steps} positions");
        assert!(at.end <= self.inputs, "positions {at:?} of {}", self.inputs);
        let first = g * GROUP;
        if !self.out_in {
            // `Conv1D`: a position's 64 outputs are already side by side.
            let width = GROUP.min(self.outputs.saturating_sub(first));
            let w = self.parts[0];
            for (k, position) in at.zip(block.chunks_exact_mut(GROUP)) {
                let start = k * self.outputs + first;
                position[..width].copy_from_slice(&w[start..start + width]);
                position[width..].fill(0.0);
            }
            return;
        }
        let rows: [Option<&[f32]>; GROUP] = std::array::from_fn(|j| self.row(first + j));
        #[cfg(target_arch = "x86_64")]
        if super::panel_tasks::has_avx512f() {
            // SAFETY: AVX-512F is present (checked); every row holds `inputs` values, of which
            // `at` lies within (asserted), and the block holds `steps × 64` (asserted).
            return unsafe { x86::transpose_rows(&rows, at, block) };
        }
        for (j, row) in rows.iter().enumerate() {
            for (k, position) in block.chunks_exact_mut(GROUP).enumerate() {
                position[j] = row.map_or(0.0, |r| r[at.start + k]);
            }
        }
    }

    /// Group `g`'s weights where they lie together in memory (`nn.Linear` rows of one part):
    /// what to prefetch before transposing it; empty otherwise.
    fn group_bytes(&self, g: usize) -> &'a [u8] {
        let (first, last) = (g * GROUP, (g * GROUP + GROUP).min(self.outputs));
        if !self.out_in || first >= last {
            return &[];
        }
        let (Some(a), Some(b)) = (self.row(first), self.row(last - 1)) else {
            return &[];
        };
        let (start, end) = (a.as_ptr() as usize, b.as_ptr() as usize + 4 * self.inputs);
        // Rows of two parts: the later part may lie below the earlier one in memory.
        if end <= start {
            return &[];
        }
        let same_part = self.parts.iter().find(|p| {
            let (s, e) = (p.as_ptr() as usize, p.as_ptr() as usize + 4 * p.len());
            s <= start && end <= e
        });
        match same_part {
            // The part's values from row `first` to the end of row `last − 1`.
            Some(part) => {
                let offset = (start - part.as_ptr() as usize) / 4;
                cast_slice(&part[offset..offset + (end - start) / 4])
            }
            None => &[],
        }
    }
}

/// The packed groups of `rows` (`dense_panels.rs`'s layout), every group transposed whole.
pub(super) fn pack(rows: Rows, data: &mut [f32]) {
    use rayon::prelude::*;
    let len = rows.inputs * GROUP;
    data.par_chunks_mut(len.max(1))
        .enumerate()
        .for_each(|(g, block)| rows.transpose(g, 0..rows.inputs, block));
}

/// A batch against a weight not kept packed: [`GroupSums`] over its rows, each span of a group
/// transposed into the task's scratch before the passes over it.
pub(super) struct RowGroups<'a> {
    pass: PassKernel,
    span: usize,
    rows: Rows<'a>,
    x: &'a [f32],
}

impl<'a> RowGroups<'a> {
    /// The weight and the activations (`x`: rows of `rows.inputs` values), or `None` where the
    /// CPU lacks the kernel.
    pub fn new(rows: Rows<'a>, x: &'a [f32]) -> Option<Self> {
        Some(Self {
            pass: pass_kernel()?,
            span: span_for(rows.inputs),
            rows,
            x,
        })
    }
}

impl GroupSums for RowGroups<'_> {
    fn span(&self) -> usize {
        self.span
    }

    /// Each span is transposed into `scratch`, then every row passes over it; the spans' passes
    /// prefetch group `next`'s weights, each span a share of them.
    fn sums(
        &self,
        g: usize,
        next: usize,
        rows: Range<usize>,
        lanes: &mut [[f32; GROUP]],
        scratch: &mut [f32],
    ) {
        let (inputs, span) = (self.rows.inputs, self.span);
        let ahead = if next == g {
            &[][..]
        } else {
            self.rows.group_bytes(next)
        };
        for at in (0..inputs).step_by(span) {
            let steps = span.min(inputs - at);
            let block = &mut scratch[..steps * GROUP];
            self.rows.transpose(g, at..at + steps, block);
            // This span's share of the next group: as many bytes as the span has packed.
            let from = (at * 4 * GROUP).min(ahead.len());
            let share = &ahead[from..(from + steps * 4 * GROUP).min(ahead.len())];
            let pass = self.pass;
            let pass = |xs: &[f32], sums: &mut [[f32; GROUP]], fresh, prefetch| {
                pass(block, xs, inputs, sums, fresh, prefetch)
            };
            span_passes(pass, steps, self.x, inputs, rows.clone(), at, lanes, share);
        }
    }
}

/// The biases of a stack side by side, zeros for a weight without one.
pub(super) fn stacked_bias(parts: &[(&Tensor, Option<&Tensor>)]) -> candle_core::Result<Vec<f32>> {
    let mut all = Vec::new();
    for (weight, bias) in parts {
        match bias {
            Some(b) => all.extend(b.flatten_all()?.to_vec1::<f32>()?),
            None => all.resize(all.len() + weight.dim(0)?, 0.0),
        }
    }
    Ok(all)
}

/// Runs `f` on the values of every tensor of `ts` (see [`with_f32`]).
pub(super) fn with_f32_all<R>(
    ts: &[&Tensor],
    f: &mut dyn FnMut(&[&[f32]]) -> R,
) -> candle_core::Result<R> {
    fn nest<R>(
        held: &[&[f32]],
        rest: &[&Tensor],
        f: &mut dyn FnMut(&[&[f32]]) -> R,
    ) -> candle_core::Result<R> {
        match rest.split_first() {
            None => Ok(f(held)),
            Some((t, rest)) => with_f32(t, |values| {
                let mut held = held.to_vec();
                held.push(values);
                nest(&held, rest, f)
            })?,
        }
    }
    nest(&[], ts, f)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::ops::Range;

    use super::GROUP;
    use crate::nn::transpose::x86::transpose16;

    /// [`super::Rows::transpose`] of `nn.Linear` rows (`None`: past the last output, zeros),
    /// 16 × 16 blocks at a time in registers.
    ///
    /// # Safety
    /// The CPU has AVX-512F; each row holds the positions `at`; `block` holds `at.len() × 64`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transpose_rows(
        rows: &[Option<&[f32]>; GROUP],
        at: Range<usize>,
        block: &mut [f32],
    ) {
        let steps = at.len();
        let out = block.as_mut_ptr();
        for j0 in (0..GROUP).step_by(16) {
            for k0 in (0..steps).step_by(16) {
                let n = (steps - k0).min(16);
                let mask = ((1u32 << n) - 1) as __mmask16;
                let loaded: [__m512; 16] = std::array::from_fn(|r| match rows[j0 + r] {
                    Some(row) => _mm512_maskz_loadu_ps(mask, row.as_ptr().add(at.start + k0)),
                    None => _mm512_setzero_ps(),
                });
                for (c, column) in transpose16(loaded).into_iter().take(n).enumerate() {
                    _mm512_storeu_ps(out.add((k0 + c) * GROUP + j0), column);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposed_spans_put_each_outputs_weights_side_by_side() {
        // Two parts of 50 and 30 rows (a group across them, and one past the last output),
        // 37 inputs: blocks of 16 positions with a tail of 5.
        let inputs = 37;
        let a: Vec<f32> = (0..50 * inputs).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..30 * inputs).map(|i| -(i as f32) - 1.0).collect();
        let parts = [&a[..], &b[..]];
        let rows = Rows {
            parts: &parts,
            outputs: 80,
            inputs,
            out_in: true,
        };
        for (g, at) in [(0, 0..37), (1, 3..24), (1, 20..37)] {
            let mut block = vec![f32::NAN; at.len() * GROUP];
            rows.transpose(g, at.clone(), &mut block);
            for (k, position) in block.chunks_exact(GROUP).enumerate() {
                for (j, &v) in position.iter().enumerate() {
                    let o = g * GROUP + j;
                    let expected = match o {
                        0..50 => a[o * inputs + at.start + k],
                        50..80 => b[(o - 50) * inputs + at.start + k],
                        _ => 0.0,
                    };
                    assert_eq!(
                        v,
                        expected,
                        "group {g}, position {}, output {o}",
                        at.start + k
                    );
                }
            }
        }
        // A group across two parts has no single range; the last group's 16 rows lie together.
        assert!(rows.group_bytes(0).is_empty());
        assert_eq!(rows.group_bytes(1).len(), 4 * 16 * inputs);
        assert_eq!(
            rows.group_bytes(1).as_ptr(),
            b[14 * inputs..].as_ptr().cast()
        );
        // The same with the second part below the first in memory (it failed on an underflow).
        let buffer: Vec<f32> = (0..80 * inputs).map(|i| i as f32).collect();
        let (below, above) = buffer.split_at(30 * inputs);
        let reversed = Rows {
            parts: &[above, below],
            ..rows
        };
        assert!(reversed.group_bytes(0).is_empty());
        assert_eq!(
            reversed.group_bytes(1).as_ptr(),
            below[14 * inputs..].as_ptr().cast()
        );
        // `Conv1D`: 80 outputs a position.
        let w: Vec<f32> = (0..inputs * 80).map(|i| i as f32).collect();
        let conv = Rows {
            parts: &[&w],
            outputs: 80,
            inputs,
            out_in: false,
        };
        let mut block = vec![f32::NAN; 4 * GROUP];
        conv.transpose(1, 2..6, &mut block);
        for (k, position) in block.chunks_exact(GROUP).enumerate() {
            for (j, &v) in position.iter().enumerate() {
                let expected = if j < 16 {
                    w[(2 + k) * 80 + 64 + j]
                } else {
                    0.0
                };
                assert_eq!(v, expected);
            }
        }
    }
}
