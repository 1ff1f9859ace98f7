//! The time loop of one recurrent layer direction as a single candle op, forward and backward
//! (backpropagation through time) written over plain `f32` slices with one `gemm` call per step
//! and fused gate arithmetic. Autograd over per-step tensor ops allocates a dozen tensors per
//! step and records them all; this does the same arithmetic with no allocation inside the loop.
//!
//! Inputs: `x` (batch, seq, G·H) — the input projections `W_ih x_t + b_ih` of every step, computed
//! outside with one matrix product (so its gradient flows through candle as usual) — `W_hh`
//! (G·H, H) and `b_hh` (G·H). The op's result is a per-step *record* (batch, seq, K) whose first H
//! columns are the hidden states; the rest keeps the gate activations the backward pass needs.
//! The equations are those of [`super::recurrent`].

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

use super::recurrent::CellKind;

/// The fused op: one direction of one layer.
pub(crate) struct FusedRecurrent {
    pub cell: CellKind,
    pub hidden: usize,
    /// 1 for real steps, 0 for padding, (batch × seq); `None`: all real.
    pub mask: Option<Vec<f32>>,
    /// Read the sequence from its end.
    pub reverse: bool,
}

impl FusedRecurrent {
    /// Width of one step's record.
    pub fn record_width(&self) -> usize {
        let h = self.hidden;
        match self.cell {
            CellKind::Rnn => 2 * h,  // h_t | tanh output
            CellKind::Lstm => 7 * h, // h_t | c_t | i | f | g | o | tanh(c_new)
            CellKind::Gru => 5 * h,  // h_t | r | z | n | W_hn h + b_hn
        }
    }

    fn order(&self, seq: usize) -> Vec<usize> {
        if self.reverse {
            (0..seq).rev().collect()
        } else {
            (0..seq).collect()
        }
    }

    fn keep(&self, b: usize, t: usize, seq: usize) -> f32 {
        self.mask.as_ref().map_or(1.0, |m| m[b * seq + t])
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `dst (m×n) = (accumulate ? dst : 0) + lhs · rhs`, with explicit (column, row) strides.
#[allow(clippy::too_many_arguments)]
fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_strides: (isize, isize),
    lhs: &[f32],
    lhs_strides: (isize, isize),
    rhs: &[f32],
    rhs_strides: (isize, isize),
    accumulate: bool,
) {
    // SAFETY: every caller passes slices whose extents cover m×k, k×n and m×n under the given
    // strides (checked by the debug assertions below), and dst does not alias lhs or rhs.
    debug_assert!(dst.len() >= m * n && lhs.len() >= m * k && rhs.len() >= k * n);
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_strides.0,
            dst_strides.1,
            accumulate,
            lhs.as_ptr(),
            lhs_strides.0,
            lhs_strides.1,
            rhs.as_ptr(),
            rhs_strides.0,
            rhs_strides.1,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

fn contiguous<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(values) = s else {
        candle_core::bail!("fused recurrent: {what} must be f32")
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("fused recurrent: {what} must be contiguous")
    };
    Ok(&values[a..b])
}

impl CustomOp3 for FusedRecurrent {
    fn name(&self) -> &'static str {
        "prosa-fused-recurrent"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (batch, seq, g) = l1.shape().dims3()?;
        let (x, w, bias) = (
            contiguous(s1, l1, "x")?,
            contiguous(s2, l2, "W_hh")?,
            contiguous(s3, l3, "b_hh")?,
        );
        let h = self.hidden;
        let k = self.record_width();
        let mut record = vec![0f32; batch * seq * k];
        let mut h_prev = vec![0f32; batch * h];
        let mut c_prev = vec![0f32; batch * h];
        let mut hh = vec![0f32; batch * g];
        for t in self.order(seq) {
            // hh = h_prev · W_hhᵀ + b_hh: W_hh is (g, h) row-major, so W_hhᵀ[k][n] = w[n·h + k].
            for row in hh.chunks_mut(g) {
                row.copy_from_slice(bias);
            }
            matmul(
                batch,
                g,
                h,
                &mut hh,
                (1, g as isize),
                &h_prev,
                (1, h as isize),
                w,
                (h as isize, 1),
                true,
            );
            for b in 0..batch {
                let xt = &x[(b * seq + t) * g..(b * seq + t + 1) * g];
                let hht = &hh[b * g..(b + 1) * g];
                let rec = &mut record[(b * seq + t) * k..(b * seq + t + 1) * k];
                let m = self.keep(b, t, seq);
                let hp = &mut h_prev[b * h..(b + 1) * h];
                match self.cell {
                    CellKind::Rnn => {
                        for j in 0..h {
                            let a = (xt[j] + hht[j]).tanh();
                            rec[h + j] = a;
                            hp[j] += m * (a - hp[j]);
                            rec[j] = hp[j];
                        }
                    }
                    CellKind::Lstm => {
                        let cp = &mut c_prev[b * h..(b + 1) * h];
                        for j in 0..h {
                            let i = sigmoid(xt[j] + hht[j]);
                            let f = sigmoid(xt[h + j] + hht[h + j]);
                            let gg = (xt[2 * h + j] + hht[2 * h + j]).tanh();
                            let o = sigmoid(xt[3 * h + j] + hht[3 * h + j]);
                            let c_new = f * cp[j] + i * gg;
                            let tc = c_new.tanh();
                            let h_new = o * tc;
                            rec[2 * h + j] = i;
                            rec[3 * h + j] = f;
                            rec[4 * h + j] = gg;
                            rec[5 * h + j] = o;
                            rec[6 * h + j] = tc;
                            cp[j] += m * (c_new - cp[j]);
                            hp[j] += m * (h_new - hp[j]);
                            rec[j] = hp[j];
                            rec[h + j] = cp[j];
                        }
                    }
                    CellKind::Gru => {
                        for j in 0..h {
                            let r = sigmoid(xt[j] + hht[j]);
                            let z = sigmoid(xt[h + j] + hht[h + j]);
                            let hn = hht[2 * h + j];
                            let n = (xt[2 * h + j] + r * hn).tanh();
                            let h_new = (1.0 - z) * n + z * hp[j];
                            rec[h + j] = r;
                            rec[2 * h + j] = z;
                            rec[3 * h + j] = n;
                            rec[4 * h + j] = hn;
                            hp[j] += m * (h_new - hp[j]);
                            rec[j] = hp[j];
                        }
                    }
                }
            }
        }
        Ok((CpuStorage::F32(record), Shape::from((batch, seq, k))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (batch, seq, g) = x.dims3()?;
        let h = self.hidden;
        let k = self.record_width();
        let w_values = w.flatten_all()?.to_vec1::<f32>()?;
        let record = res.flatten_all()?.to_vec1::<f32>()?;
        let grad = grad_res.flatten_all()?.to_vec1::<f32>()?;
        let mut dx = vec![0f32; batch * seq * g];
        let mut dw = vec![0f32; g * h];
        let mut db = vec![0f32; g];
        let mut dh = vec![0f32; batch * h]; // gradient reaching h_t from later steps
        let mut dc = vec![0f32; batch * h]; // LSTM: gradient reaching c_t from later steps
        let mut dgates = vec![0f32; batch * g]; // gradient w.r.t. x_t + hh (RNN, LSTM) or hh (GRU)
        let mut h_prev = vec![0f32; batch * h];
        let order = self.order(seq);
        for (pos, &t) in order.iter().enumerate().rev() {
            let previous = pos.checked_sub(1).map(|p| order[p]);
            for b in 0..batch {
                let hp = &mut h_prev[b * h..(b + 1) * h];
                match previous {
                    Some(tp) => {
                        hp.copy_from_slice(&record[(b * seq + tp) * k..(b * seq + tp) * k + h])
                    }
                    None => hp.iter_mut().for_each(|v| *v = 0.0),
                }
            }
            for b in 0..batch {
                let rec = &record[(b * seq + t) * k..(b * seq + t + 1) * k];
                let gr = &grad[(b * seq + t) * k..(b * seq + t) * k + h];
                let m = self.keep(b, t, seq);
                let hp = &h_prev[b * h..(b + 1) * h];
                let dht = &mut dh[b * h..(b + 1) * h];
                let dgt = &mut dgates[b * g..(b + 1) * g];
                let dxt = &mut dx[(b * seq + t) * g..(b * seq + t + 1) * g];
                match self.cell {
                    CellKind::Rnn => {
                        for j in 0..h {
                            let total = gr[j] + dht[j];
                            let a = rec[h + j];
                            let da = m * total * (1.0 - a * a);
                            dgt[j] = da;
                            dxt[j] = da;
                            dht[j] = (1.0 - m) * total; // the gemm below adds da · W_hh
                        }
                    }
                    CellKind::Lstm => {
                        let dct = &mut dc[b * h..(b + 1) * h];
                        for j in 0..h {
                            let total = gr[j] + dht[j];
                            let (i, f, gg, o, tc) = (
                                rec[2 * h + j],
                                rec[3 * h + j],
                                rec[4 * h + j],
                                rec[5 * h + j],
                                rec[6 * h + j],
                            );
                            // c_{t-1}: the previous step's record, or 0.
                            let cp = match previous {
                                Some(tp) => record[(b * seq + tp) * k + h + j],
                                None => 0.0,
                            };
                            let dh_new = m * total;
                            let dc_new = m * dct[j] + dh_new * o * (1.0 - tc * tc);
                            let (di, df, dg, d_o) =
                                (dc_new * gg, dc_new * cp, dc_new * i, dh_new * tc);
                            dgt[j] = di * i * (1.0 - i);
                            dgt[h + j] = df * f * (1.0 - f);
                            dgt[2 * h + j] = dg * (1.0 - gg * gg);
                            dgt[3 * h + j] = d_o * o * (1.0 - o);
                            dct[j] = (1.0 - m) * dct[j] + dc_new * f;
                            dht[j] = (1.0 - m) * total;
                        }
                        dxt.copy_from_slice(dgt);
                    }
                    CellKind::Gru => {
                        for j in 0..h {
                            let total = gr[j] + dht[j];
                            let (r, z, n, hn) =
                                (rec[h + j], rec[2 * h + j], rec[3 * h + j], rec[4 * h + j]);
                            let dh_new = m * total;
                            let dn = dh_new * (1.0 - z);
                            let dz = dh_new * (hp[j] - n);
                            let dan = dn * (1.0 - n * n);
                            let dr = dan * hn;
                            let dar = dr * r * (1.0 - r);
                            let daz = dz * z * (1.0 - z);
                            dxt[j] = dar;
                            dxt[h + j] = daz;
                            dxt[2 * h + j] = dan;
                            dgt[j] = dar;
                            dgt[h + j] = daz;
                            dgt[2 * h + j] = dan * r;
                            dht[j] = (1.0 - m) * total + dh_new * z;
                        }
                    }
                }
            }
            // Parameter gradients of this step and the gradient flowing to h_{t-1}.
            for row in dgates.chunks(g) {
                for (acc, v) in db.iter_mut().zip(row) {
                    *acc += v;
                }
            }
            // dW_hh (g×h) += dgatesᵀ (g×batch) · h_prev (batch×h)
            matmul(
                g,
                h,
                batch,
                &mut dw,
                (1, h as isize),
                &dgates,
                (g as isize, 1),
                &h_prev,
                (1, h as isize),
                true,
            );
            // dh (batch×h) += dgates (batch×g) · W_hh (g×h)
            matmul(
                batch,
                h,
                g,
                &mut dh,
                (1, h as isize),
                &dgates,
                (1, g as isize),
                &w_values,
                (1, h as isize),
                true,
            );
        }
        let device = x.device();
        Ok((
            Some(Tensor::from_vec(dx, (batch, seq, g), device)?),
            Some(Tensor::from_vec(dw, (g, h), device)?),
            Some(Tensor::from_vec(db, g, device)?),
        ))
    }
}
