//! Raw events are kept as zstd-compressed chunks: one per commit, many events each.
//! Layout of the uncompressed chunk, per event: `u16 id_len, id, u8 stage_len, stage,
//! i64 ts, u32 json_len, json` (little endian).

use loupe_timeline::RawEvent;

use crate::{Result, StoreError};

const LEVEL: i32 = 1;

pub fn encode(events: &[RawEvent]) -> Result<Vec<u8>> {
    let size: usize = events.iter().map(|e| e.json.len() + e.audit_id.len() + 32).sum();
    let mut buf = Vec::with_capacity(size);
    for e in events {
        let id = e.audit_id.as_bytes();
        let id = &id[..id.len().min(u16::MAX as usize)];
        buf.extend_from_slice(&(id.len() as u16).to_le_bytes());
        buf.extend_from_slice(id);
        buf.push(e.stage.len() as u8);
        buf.extend_from_slice(e.stage.as_bytes());
        buf.extend_from_slice(&e.ts.to_le_bytes());
        buf.extend_from_slice(&(e.json.len() as u32).to_le_bytes());
        buf.extend_from_slice(e.json.as_bytes());
    }
    Ok(zstd::bulk::compress(&buf, LEVEL)?)
}

/// One decoded entry of a chunk.
pub struct Entry<'a> {
    pub audit_id: &'a str,
    pub stage: &'a str,
    pub ts: i64,
    pub json: &'a str,
}

pub fn decompress(id: i64, data: &[u8], raw_len: usize) -> Result<Vec<u8>> {
    zstd::bulk::decompress(data, raw_len.max(1)).map_err(|_| StoreError::CorruptChunk(id))
}

pub fn entries(id: i64, buf: &[u8]) -> Result<Vec<Entry<'_>>> {
    let corrupt = || StoreError::CorruptChunk(id);
    let mut out = Vec::new();
    let mut at = 0usize;
    let take = |at: &mut usize, n: usize| -> Result<&[u8]> {
        let end = at.checked_add(n).filter(|e| *e <= buf.len()).ok_or_else(corrupt)?;
        let s = &buf[*at..end];
        *at = end;
        Ok(s)
    };
    while at < buf.len() {
        let id_len = u16::from_le_bytes(take(&mut at, 2)?.try_into().map_err(|_| corrupt())?);
        let audit_id = text(id, take(&mut at, id_len as usize)?)?;
        let stage_len = take(&mut at, 1)?[0];
        let stage = text(id, take(&mut at, stage_len as usize)?)?;
        let ts = i64::from_le_bytes(take(&mut at, 8)?.try_into().map_err(|_| corrupt())?);
        let json_len = u32::from_le_bytes(take(&mut at, 4)?.try_into().map_err(|_| corrupt())?);
        let json = text(id, take(&mut at, json_len as usize)?)?;
        out.push(Entry {
            audit_id,
            stage,
            ts,
            json,
        });
    }
    Ok(out)
}

fn text(id: i64, b: &[u8]) -> Result<&str> {
    std::str::from_utf8(b).map_err(|_| StoreError::CorruptChunk(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let events: Vec<RawEvent> = (0..3)
            .map(|i| RawEvent {
                audit_id: format!("id-{i}"),
                stage: "ResponseComplete",
                ts: i,
                json: format!("{{\"n\":{i}}}\n"),
            })
            .collect();
        let packed = encode(&events).unwrap();
        let raw_len: usize = 4096;
        let buf = decompress(1, &packed, raw_len).unwrap();
        let got = entries(1, &buf).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!((got[2].audit_id, got[2].ts, got[2].json), ("id-2", 2, "{\"n\":2}\n"));
        assert!(entries(1, &buf[..buf.len() - 1]).is_err());
        assert!(decompress(1, b"nope", 10).is_err());
    }
}
