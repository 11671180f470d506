//! A reader for PyTorch checkpoints (`torch.save` zip archives) holding tensors.
//!
//! It understands the subset of the pickle protocol that `torch.save` emits for a dictionary of
//! tensors (Open3D-ML's `{"model_state_dict": OrderedDict(...)}`, or a bare state dict): globals,
//! tuples, dictionaries, strings, numbers, persistent storage ids and `_rebuild_tensor_v2`. It never
//! executes anything: an unknown global becomes an opaque value, an unknown opcode an error.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};
use crate::weights::Param;

/// A pickled value. Some payloads are only read through `Debug`, in error messages.
#[derive(Debug, Clone)]
#[allow(dead_code)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String, String),
    Storage {
        dtype: String,
        key: String,
    },
    Tensor {
        dtype: String,
        key: String,
        offset: usize,
        shape: Vec<usize>,
        stride: Vec<usize>,
    },
    Mark,
    Opaque(String),
}

/// Reads every tensor of the checkpoint's state dict: the `model_state_dict` (or `state_dict`)
/// entry when the top level is a dictionary holding one, else the top-level dictionary itself.
/// Integer tensors (batch-norm counters) are converted to `f32`.
pub fn read_pth(path: &Path) -> Result<Vec<(String, Param)>> {
    let bad = |message: String| Error::Checkpoint {
        path: path.into(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| {
        bad(format!(
            "not a torch.save zip archive ({e}); legacy (pre-1.6) checkpoints are not supported"
        ))
    })?;
    let pkl_name = (0..zip.len())
        .filter_map(|i| {
            zip.name_for_index(i)
                .and_then(|n| n.ok())
                .map(|n| n.to_string())
        })
        .find(|n| n.ends_with("data.pkl"))
        .ok_or_else(|| bad("the archive has no data.pkl".into()))?;
    let prefix = pkl_name.trim_end_matches("data.pkl").to_string();
    if let Ok(mut bo) = zip.by_name(&format!("{prefix}byteorder")) {
        let mut s = String::new();
        bo.read_to_string(&mut s)
            .map_err(|e| bad(format!("byteorder: {e}")))?;
        if s.trim() != "little" {
            return Err(bad(format!(
                "byteorder {s:?} is not supported (little-endian only)"
            )));
        }
    }
    let mut pkl = Vec::new();
    zip.by_name(&pkl_name)
        .and_then(|mut f| f.read_to_end(&mut pkl).map_err(Into::into))
        .map_err(|e| bad(format!("{pkl_name}: {e}")))?;
    let root = unpickle(&pkl).map_err(|m| bad(format!("{pkl_name}: {m}")))?;

    let dict = match &root {
        Value::Dict(items) => {
            let nested = items.iter().find_map(|(k, v)| match (k, v) {
                (Value::Str(k), Value::Dict(_)) if k == "model_state_dict" || k == "state_dict" => {
                    Some(v)
                }
                _ => None,
            });
            nested.unwrap_or(&root)
        }
        _ => return Err(bad("the pickled object is not a dictionary".into())),
    };
    let Value::Dict(items) = dict else {
        unreachable!()
    };
    let mut out = Vec::new();
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    for (k, v) in items {
        let (
            Value::Str(name),
            Value::Tensor {
                dtype,
                key,
                offset,
                shape,
                stride,
            },
        ) = (k, v)
        else {
            continue;
        };
        if !storages.contains_key(key) {
            let mut bytes = Vec::new();
            let entry = format!("{prefix}data/{key}");
            zip.by_name(&entry)
                .and_then(|mut f| f.read_to_end(&mut bytes).map_err(Into::into))
                .map_err(|e| bad(format!("tensor {name}: storage {entry}: {e}")))?;
            storages.insert(key.clone(), bytes);
        }
        let values =
            decode(&storages[key], dtype).map_err(|m| bad(format!("tensor {name}: {m}")))?;
        let data = strided(&values, *offset, shape, stride)
            .ok_or_else(|| bad(format!("tensor {name}: shape {shape:?} / stride {stride:?} / offset {offset} exceed its storage of {} values", values.len())))?;
        out.push((
            name.clone(),
            Param {
                shape: shape.clone(),
                data,
            },
        ));
    }
    if out.is_empty() {
        return Err(bad("no tensor found in the state dict".into()));
    }
    Ok(out)
}

fn decode(bytes: &[u8], dtype: &str) -> std::result::Result<Vec<f32>, String> {
    let chunks = |w: usize| {
        if !bytes.len().is_multiple_of(w) {
            Err(format!(
                "storage of {} bytes is not a whole number of {dtype} values",
                bytes.len()
            ))
        } else {
            Ok(bytes.chunks_exact(w))
        }
    };
    Ok(match dtype {
        "FloatStorage" => chunks(4)?
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        "DoubleStorage" => chunks(8)?
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        "HalfStorage" => chunks(2)?
            .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        "BFloat16Storage" => chunks(2)?
            .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
            .collect(),
        "LongStorage" => chunks(8)?
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        "IntStorage" => chunks(4)?
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        other => return Err(format!("unsupported storage type {other}")),
    })
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: renormalise.
            let mut e = 127 - 15 + 1;
            let mut m = m;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | ((e as u32) << 23) | ((m & 0x3ff) << 13)
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// Copies a strided view into a contiguous row-major vector.
fn strided(values: &[f32], offset: usize, shape: &[usize], stride: &[usize]) -> Option<Vec<f32>> {
    let n: usize = shape.iter().product();
    if n == 0 {
        return Some(Vec::new());
    }
    let last = offset
        + shape
            .iter()
            .zip(stride)
            .map(|(s, st)| (s - 1) * st)
            .sum::<usize>();
    if last >= values.len() || stride.len() != shape.len() {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..n {
        let pos = offset + idx.iter().zip(stride).map(|(i, s)| i * s).sum::<usize>();
        out.push(values[pos]);
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Some(out)
}

fn as_usizes(v: &Value) -> std::result::Result<Vec<usize>, String> {
    match v {
        Value::Tuple(items) | Value::List(items) => items
            .iter()
            .map(|x| match x {
                Value::Int(i) if *i >= 0 => Ok(*i as usize),
                other => Err(format!("expected a non-negative integer, got {other:?}")),
            })
            .collect(),
        other => Err(format!("expected a tuple of integers, got {other:?}")),
    }
}

/// Interprets the pickle stream (protocol 2 to 5 subset).
fn unpickle(data: &[u8]) -> std::result::Result<Value, String> {
    let mut stack: Vec<Value> = Vec::new();
    let mut memo: HashMap<u32, Value> = HashMap::new();
    let mut pos = 0usize;
    let take = |pos: &mut usize, n: usize| -> std::result::Result<&[u8], String> {
        let end = pos
            .checked_add(n)
            .filter(|&e| e <= data.len())
            .ok_or("truncated pickle stream")?;
        let s = &data[*pos..end];
        *pos = end;
        Ok(s)
    };
    let pop = |stack: &mut Vec<Value>| {
        stack
            .pop()
            .ok_or_else(|| "pickle stack underflow".to_string())
    };
    let pop_mark = |stack: &mut Vec<Value>| -> std::result::Result<Vec<Value>, String> {
        let m = stack
            .iter()
            .rposition(|v| matches!(v, Value::Mark))
            .ok_or("MARK missing")?;
        let items = stack.split_off(m + 1);
        stack.pop();
        Ok(items)
    };
    loop {
        let op = *take(&mut pos, 1)?.first().ok_or("empty")?;
        match op {
            0x80 => {
                take(&mut pos, 1)?;
            }
            0x95 => {
                take(&mut pos, 8)?;
            }
            b'.' => return pop(&mut stack),
            b'c' => {
                let line = |pos: &mut usize| -> std::result::Result<String, String> {
                    let rest = &data[*pos..];
                    let n = rest
                        .iter()
                        .position(|&b| b == b'\n')
                        .ok_or("unterminated GLOBAL")?;
                    *pos += n + 1;
                    Ok(String::from_utf8_lossy(&rest[..n]).into_owned())
                };
                let module = line(&mut pos)?;
                let name = line(&mut pos)?;
                stack.push(Value::Global(module, name));
            }
            0x93 => {
                let name = pop(&mut stack)?;
                let module = pop(&mut stack)?;
                match (module, name) {
                    (Value::Str(m), Value::Str(n)) => stack.push(Value::Global(m, n)),
                    _ => return Err("STACK_GLOBAL needs two strings".into()),
                }
            }
            b'q' => {
                let k = take(&mut pos, 1)?[0] as u32;
                memo.insert(k, stack.last().cloned().ok_or("BINPUT on empty stack")?);
            }
            b'r' => {
                let k = u32::from_le_bytes(take(&mut pos, 4)?.try_into().unwrap());
                memo.insert(
                    k,
                    stack.last().cloned().ok_or("LONG_BINPUT on empty stack")?,
                );
            }
            0x94 => {
                let k = memo.len() as u32;
                memo.insert(k, stack.last().cloned().ok_or("MEMOIZE on empty stack")?);
            }
            b'h' => {
                let k = take(&mut pos, 1)?[0] as u32;
                stack.push(memo.get(&k).cloned().ok_or(format!("memo {k} missing"))?);
            }
            b'j' => {
                let k = u32::from_le_bytes(take(&mut pos, 4)?.try_into().unwrap());
                stack.push(memo.get(&k).cloned().ok_or(format!("memo {k} missing"))?);
            }
            b'}' => stack.push(Value::Dict(Vec::new())),
            b']' => stack.push(Value::List(Vec::new())),
            b')' => stack.push(Value::Tuple(Vec::new())),
            b'(' => stack.push(Value::Mark),
            b'N' => stack.push(Value::None),
            0x88 => stack.push(Value::Bool(true)),
            0x89 => stack.push(Value::Bool(false)),
            b'X' => {
                let n = u32::from_le_bytes(take(&mut pos, 4)?.try_into().unwrap()) as usize;
                stack.push(Value::Str(
                    String::from_utf8_lossy(take(&mut pos, n)?).into_owned(),
                ));
            }
            0x8c => {
                let n = take(&mut pos, 1)?[0] as usize;
                stack.push(Value::Str(
                    String::from_utf8_lossy(take(&mut pos, n)?).into_owned(),
                ));
            }
            b'J' => stack.push(Value::Int(
                i32::from_le_bytes(take(&mut pos, 4)?.try_into().unwrap()) as i64,
            )),
            b'K' => stack.push(Value::Int(take(&mut pos, 1)?[0] as i64)),
            b'M' => stack.push(Value::Int(
                u16::from_le_bytes(take(&mut pos, 2)?.try_into().unwrap()) as i64,
            )),
            0x8a => {
                let n = take(&mut pos, 1)?[0] as usize;
                let b = take(&mut pos, n)?;
                if n > 8 {
                    return Err("LONG1 wider than 64 bits".into());
                }
                let mut buf = if b.last().is_some_and(|&x| x & 0x80 != 0) {
                    [0xffu8; 8]
                } else {
                    [0u8; 8]
                };
                buf[..n].copy_from_slice(b);
                stack.push(Value::Int(i64::from_le_bytes(buf)));
            }
            b'G' => stack.push(Value::Float(f64::from_be_bytes(
                take(&mut pos, 8)?.try_into().unwrap(),
            ))),
            b't' => {
                let items = pop_mark(&mut stack)?;
                stack.push(Value::Tuple(items));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < n {
                    return Err("pickle stack underflow in TUPLEn".into());
                }
                let items = stack.split_off(stack.len() - n);
                stack.push(Value::Tuple(items));
            }
            b'a' => {
                let v = pop(&mut stack)?;
                if let Some(Value::List(l)) = stack.last_mut() {
                    l.push(v);
                }
            }
            b'e' => {
                let items = pop_mark(&mut stack)?;
                if let Some(Value::List(l)) = stack.last_mut() {
                    l.extend(items);
                }
            }
            b's' => {
                let v = pop(&mut stack)?;
                let k = pop(&mut stack)?;
                match stack.last_mut() {
                    Some(Value::Dict(d)) => d.push((k, v)),
                    _ => return Err("SETITEM on a non-dictionary".into()),
                }
            }
            b'u' => {
                let items = pop_mark(&mut stack)?;
                if items.len() % 2 != 0 {
                    return Err("SETITEMS with an odd number of items".into());
                }
                let Some(Value::Dict(d)) = stack.last_mut() else {
                    return Err("SETITEMS on a non-dictionary".into());
                };
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    d.push((k, v));
                }
            }
            b'Q' => {
                let pid = pop(&mut stack)?;
                let Value::Tuple(t) = pid else {
                    return Err("persistent id is not a tuple".into());
                };
                match (t.first(), t.get(1), t.get(2)) {
                    (
                        Some(Value::Str(tag)),
                        Some(Value::Global(_, dtype)),
                        Some(Value::Str(key)),
                    ) if tag == "storage" => stack.push(Value::Storage {
                        dtype: dtype.clone(),
                        key: key.clone(),
                    }),
                    _ => return Err(format!("unsupported persistent id {t:?}")),
                }
            }
            b'R' => {
                let args = pop(&mut stack)?;
                let func = pop(&mut stack)?;
                let Value::Tuple(args) = args else {
                    return Err("REDUCE arguments are not a tuple".into());
                };
                stack.push(reduce(func, args)?);
            }
            0x81 => {
                let _args = pop(&mut stack)?;
                let cls = pop(&mut stack)?;
                stack.push(Value::Opaque(format!("{cls:?}")));
            }
            b'b' => {
                // BUILD sets state on the object below (e.g. an OrderedDict's _metadata): ignored.
                pop(&mut stack)?;
            }
            other => {
                return Err(format!(
                    "unsupported pickle opcode 0x{other:02x} at byte {}",
                    pos - 1
                ));
            }
        }
    }
}

fn reduce(func: Value, args: Vec<Value>) -> std::result::Result<Value, String> {
    let Value::Global(module, name) = func else {
        return Ok(Value::Opaque("call".into()));
    };
    Ok(match (module.as_str(), name.as_str()) {
        ("collections", "OrderedDict") => Value::Dict(Vec::new()),
        ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
            let (
                Some(Value::Storage { dtype, key }),
                Some(Value::Int(offset)),
                Some(size),
                Some(stride),
            ) = (args.first(), args.get(1), args.get(2), args.get(3))
            else {
                return Err(format!("{name} with unexpected arguments"));
            };
            Value::Tensor {
                dtype: dtype.clone(),
                key: key.clone(),
                offset: *offset as usize,
                shape: as_usizes(size)?,
                stride: as_usizes(stride)?,
            }
        }
        ("torch._utils", "_rebuild_parameter") => args.into_iter().next().unwrap_or(Value::None),
        _ => Value::Opaque(format!("{module}.{name}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_decodes() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert!(f16_to_f32(0x7c00).is_infinite());
    }

    #[test]
    fn strided_views_are_copied_in_row_major_order() {
        let v: Vec<f32> = (0..6).map(|x| x as f32).collect();
        // The transpose of a 2×3 matrix.
        assert_eq!(
            strided(&v, 0, &[3, 2], &[1, 3]).unwrap(),
            vec![0., 3., 1., 4., 2., 5.]
        );
        assert!(strided(&v, 4, &[2, 2], &[2, 1]).is_none());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(unpickle(&[0x80, 2, b'(', b'K']).is_err());
        assert!(unpickle(&[0xff]).is_err());
        assert!(unpickle(&[]).is_err());
        assert!(unpickle(b"s").is_err());
    }
}
