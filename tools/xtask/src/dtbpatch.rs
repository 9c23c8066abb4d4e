//! Editing a flattened device tree in place, for the boot test of a CPU that cannot start:
//! QEMU's own `virt` tree with one CPU's `reg` (its MPIDR) changed to an affinity no CPU
//! has, so PSCI `CPU_ON` refuses it. Only same-size property values are rewritten; the
//! blob's layout never changes.

const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

fn be32(b: &[u8], at: usize) -> Result<u32, String> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| format!("device tree truncated at {at}"))
}

/// Set the 4-byte property `prop` of the node named `node` (anywhere in the tree) to `value`.
pub fn set_u32_property(dtb: &mut [u8], node: &str, prop: &str, value: u32) -> Result<(), String> {
    if be32(dtb, 0)? != FDT_MAGIC {
        return Err("not a flattened device tree".to_owned());
    }
    let structs = be32(dtb, 8)? as usize;
    let strings = be32(dtb, 12)? as usize;
    let mut at = structs;
    let mut in_node = false;
    loop {
        let token = be32(dtb, at)?;
        at += 4;
        match token {
            FDT_BEGIN_NODE => {
                let end = dtb[at..]
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or("unterminated node name")?;
                in_node = &dtb[at..at + end] == node.as_bytes();
                at = (at + end + 1).next_multiple_of(4);
            }
            FDT_END_NODE => in_node = false,
            FDT_PROP => {
                let len = be32(dtb, at)? as usize;
                let name_off = be32(dtb, at + 4)? as usize;
                let value_at = at + 8;
                let name_start = strings + name_off;
                let name_end = dtb[name_start..]
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or("bad property name")?;
                let name = &dtb[name_start..name_start + name_end];
                if in_node && name == prop.as_bytes() {
                    if len != 4 {
                        return Err(format!("{node}/{prop} is {len} bytes, not 4"));
                    }
                    dtb[value_at..value_at + 4].copy_from_slice(&value.to_be_bytes());
                    return Ok(());
                }
                at = (value_at + len).next_multiple_of(4);
            }
            FDT_NOP => {}
            FDT_END => return Err(format!("no property {prop} in a node {node}")),
            other => return Err(format!("bad token {other:#x} at {}", at - 4)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree with root { cpus { cpu@1 { reg = <1>; } } }.
    fn tree() -> Vec<u8> {
        let mut s = Vec::new();
        let node = |s: &mut Vec<u8>, name: &str| {
            s.extend_from_slice(&FDT_BEGIN_NODE.to_be_bytes());
            s.extend_from_slice(name.as_bytes());
            s.push(0);
            while !s.len().is_multiple_of(4) {
                s.push(0);
            }
        };
        node(&mut s, "");
        node(&mut s, "cpus");
        node(&mut s, "cpu@1");
        s.extend_from_slice(&FDT_PROP.to_be_bytes());
        s.extend_from_slice(&4u32.to_be_bytes());
        s.extend_from_slice(&0u32.to_be_bytes());
        s.extend_from_slice(&1u32.to_be_bytes());
        for _ in 0..3 {
            s.extend_from_slice(&FDT_END_NODE.to_be_bytes());
        }
        s.extend_from_slice(&FDT_END.to_be_bytes());
        let strings = b"reg\0";
        let mut out = vec![0u8; 40];
        out[0..4].copy_from_slice(&FDT_MAGIC.to_be_bytes());
        out[8..12].copy_from_slice(&40u32.to_be_bytes());
        out[12..16].copy_from_slice(&((40 + s.len()) as u32).to_be_bytes());
        out.extend_from_slice(&s);
        out.extend_from_slice(strings);
        out
    }

    #[test]
    fn rewrites_the_named_property_only() {
        let mut dtb = tree();
        set_u32_property(&mut dtb, "cpu@1", "reg", 7).unwrap();
        let before = tree();
        let changed: Vec<usize> = (0..dtb.len()).filter(|&i| dtb[i] != before[i]).collect();
        assert_eq!(changed.len(), 1);
        assert_eq!(dtb[changed[0]], 7);
        assert!(set_u32_property(&mut dtb, "cpu@9", "reg", 7).is_err());
        assert!(set_u32_property(&mut tree()[..20], "cpu@1", "reg", 7).is_err());
    }
}
