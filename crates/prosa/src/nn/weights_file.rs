//! Safetensors files read one tensor at a time.
//!
//! Reading a whole checkpoint into memory before copying it into the model's parameters held
//! the weights three times at once (the file's bytes, the tensors made from them, the model's
//! own initial values): BERT-base peaked at 1.3 GB for 440 MB of weights. Here the header is
//! parsed and checked first (by the `safetensors` crate: offsets contiguous, sizes matching the
//! shapes) and the file's length compared with it, so a truncated file is an error before
//! anything is read; each tensor's bytes are then read when the tensor is wanted and dropped
//! once copied into its parameter.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::safetensors::Load;
use candle_core::{Device, Tensor};
use safetensors::tensor::{Dtype, Metadata, TensorView};

use crate::error::{Error, Result};

/// The largest header accepted (the `safetensors` crate's own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Something a parameter can be loaded from: a tensor in memory or one still in its file.
pub trait TensorSource {
    /// Its shape (known without reading the values).
    fn dims(&self) -> &[usize];
    /// Its values, on `device`.
    fn tensor(&self, device: &Device) -> Result<Tensor>;
}

impl TensorSource for Tensor {
    fn dims(&self) -> &[usize] {
        Tensor::dims(self)
    }

    fn tensor(&self, device: &Device) -> Result<Tensor> {
        Ok(self.to_device(device)?)
    }
}

/// An open safetensors file whose header has been checked.
struct WeightsFile {
    path: PathBuf,
    file: Mutex<File>,
    /// Offset of the first data byte (after the length prefix and the header).
    data_start: u64,
    metadata: Metadata,
}

/// One tensor of a safetensors file, read when [`TensorSource::tensor`] asks for it. Cloning
/// is cheap (the file is shared).
#[derive(Clone)]
pub struct LazyTensor {
    file: Arc<WeightsFile>,
    name: String,
    dims: Vec<usize>,
}

impl std::fmt::Debug for LazyTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyTensor")
            .field("file", &self.file.path)
            .field("name", &self.name)
            .field("dims", &self.dims)
            .finish()
    }
}

impl TensorSource for LazyTensor {
    fn dims(&self) -> &[usize] {
        &self.dims
    }

    fn tensor(&self, device: &Device) -> Result<Tensor> {
        let file = &self.file;
        let corrupt = |detail: String| {
            Error::folder(
                &file.path,
                format!("cannot read safetensors (truncated or corrupt?): {detail}"),
            )
        };
        let info = file
            .metadata
            .info(&self.name)
            .ok_or_else(|| corrupt(format!("no tensor '{}'", self.name)))?;
        let (start, end) = info.data_offsets;
        let read = |bytes: &mut [u8]| {
            // A poisoned lock only means another reader panicked; seeking again is safe.
            let mut handle = file.file.lock().unwrap_or_else(|p| p.into_inner());
            handle
                .seek(SeekFrom::Start(file.data_start + start as u64))
                .and_then(|_| handle.read_exact(bytes))
                .map_err(|e| corrupt(format!("tensor '{}': {e}", self.name)))
        };
        // f32 values are read straight into the tensor's own buffer (no byte copy made first).
        let count: usize = info.shape.iter().product();
        if info.dtype == Dtype::F32 && cfg!(target_endian = "little") && count * 4 == end - start {
            let mut values = vec![0f32; count];
            read(bytemuck::cast_slice_mut(&mut values))?;
            return Ok(Tensor::from_vec(values, info.shape.clone(), device)?);
        }
        let mut bytes = vec![0u8; end - start];
        read(&mut bytes)?;
        let view = TensorView::new(info.dtype, info.shape.clone(), &bytes)
            .map_err(|e| corrupt(format!("tensor '{}': {e}", self.name)))?;
        view.load(device)
            .map_err(|e| corrupt(format!("tensor '{}': {e}", self.name)))
    }
}

/// The tensors of the safetensors file at `path`, by name, none read yet. A missing file, a
/// header that does not parse or describes more data than the file holds is an error naming
/// the file.
pub fn open_safetensors(path: &Path) -> Result<HashMap<String, LazyTensor>> {
    if !path.exists() {
        return Err(Error::folder(path, "file not found"));
    }
    let corrupt = |detail: String| {
        Error::folder(
            path,
            format!("cannot read safetensors (truncated or corrupt?): {detail}"),
        )
    };
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix)
        .map_err(|_| corrupt(format!("{file_len} bytes: no header length")))?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > MAX_HEADER_BYTES || header_len > file_len - 8 {
        return Err(corrupt(format!(
            "header of {header_len} bytes in a file of {file_len} bytes"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)
        .map_err(|e| corrupt(format!("header: {e}")))?;
    let metadata: Metadata =
        serde_json::from_slice(&header).map_err(|e| corrupt(format!("header: {e}")))?;
    let data_start = 8 + header_len;
    let expected = data_start + metadata.data_len() as u64;
    if expected != file_len {
        return Err(corrupt(format!(
            "the header describes {expected} bytes, the file has {file_len}"
        )));
    }
    let shared = Arc::new(WeightsFile {
        path: path.to_path_buf(),
        file: Mutex::new(file),
        data_start,
        metadata,
    });
    Ok(shared
        .metadata
        .tensors()
        .into_iter()
        .map(|(name, info)| {
            let lazy = LazyTensor {
                file: shared.clone(),
                name: name.clone(),
                dims: info.shape.clone(),
            };
            (name, lazy)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path) -> PathBuf {
        let path = dir.join("w.safetensors");
        let a = Tensor::arange(0f32, 6.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 3))
            .unwrap();
        let b = Tensor::new(&[7i64, 8], &Device::Cpu).unwrap();
        let tensors = HashMap::from([("a".to_string(), a), ("b".to_string(), b)]);
        candle_core::safetensors::save(&tensors, &path).unwrap();
        path
    }

    #[test]
    fn tensors_read_on_demand_equal_the_saved_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path());
        let lazy = open_safetensors(&path).unwrap();
        assert_eq!(lazy["a"].dims(), &[2, 3]);
        let a = lazy["a"].tensor(&Device::Cpu).unwrap();
        assert_eq!(
            a.to_vec2::<f32>().unwrap(),
            vec![vec![0.0, 1.0, 2.0], vec![3.0, 4.0, 5.0]]
        );
        let b = lazy["b"].tensor(&Device::Cpu).unwrap();
        assert_eq!(b.to_vec1::<i64>().unwrap(), vec![7, 8]);
    }

    #[test]
    fn truncated_files_and_huge_headers_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path());
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
        let err = open_safetensors(&path).unwrap_err().to_string();
        assert!(
            err.contains("w.safetensors") && err.contains("the file has"),
            "{err}"
        );
        let mut huge = u64::MAX.to_le_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        std::fs::write(&path, &huge).unwrap();
        let err = open_safetensors(&path).unwrap_err().to_string();
        assert!(err.contains("header of"), "{err}");
        std::fs::write(&path, b"abc").unwrap();
        let err = open_safetensors(&path).unwrap_err().to_string();
        assert!(err.contains("no header length"), "{err}");
    }
}
