//! Client-to-server masking (RFC 6455 section 5.3).
//!
//! Why clients mask (section 10.3): a WebSocket client is often a script on a web page, written
//! by whoever wrote the page. Unmasked, that script would choose the exact bytes a proxy or cache
//! between the browser and the server sees, and could make them look like an HTTP request of
//! its own choosing (the cache-poisoning attack the section describes). The browser picks a fresh
//! random key for every frame, so the script no longer controls the bytes on the wire. Masking is
//! not encryption (the key travels in the frame header); it protects intermediaries, not the
//! message. Servers do not mask: the page's script cannot choose what a server sends.
//!
//! Where the mask comes off: [`super::decoder`] checks that every client frame has a key
//! (`Error::UnmaskedFrame`, close 1002, otherwise) and unmasks each payload piece as it is copied
//! out of the read (`Payload::unmask_into`).
//!
//! Every byte `i` of a client frame's payload is XORed with `mask[i % 4]` ("octet i of the
//! transformed data is the XOR of octet i of the original data with octet at index i modulo 4 of
//! the masking key"). Because payloads arrive in pieces, both functions take `offset`: how many
//! payload bytes of this frame came before `buf`, so the key is picked up at the right byte.
//!
//! [`apply_mask_naive`] is the definition, one byte at a time. [`apply_mask`] is what the reader
//! uses: eight bytes at a time with a 64-bit key, in safe code the compiler is free to vectorise.
//! A test checks that the two agree for every length, offset and alignment; the `mask` bench
//! shows how close the fast one gets to a plain memory copy.

/// The definition: one byte at a time.
pub fn apply_mask_naive(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= mask[(offset + i) % 4];
    }
}

/// The fast version: XORs whole 8-byte words with the key repeated twice.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    // Rotate the key so that its first byte lines up with `buf[0]`.
    let mask = rotate(mask, offset);
    let key = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut words = buf.chunks_exact_mut(8);
    for word in &mut words {
        let value = u64::from_ne_bytes((&*word).try_into().expect("8-byte chunk")) ^ key;
        word.copy_from_slice(&value.to_ne_bytes());
    }
    // The tail is shorter than 8 bytes and starts at a multiple of 8, so the key is in phase.
    apply_mask_naive(words.into_remainder(), mask, 0);
}

fn rotate(mask: [u8; 4], offset: usize) -> [u8; 4] {
    let mut rotated = mask;
    rotated.rotate_left(offset % 4);
    rotated
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_agrees_with_naive_for_every_length_offset_and_alignment() {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for start in 0..8 {
            for len in 0..(data.len() - start) {
                for offset in 0..4 {
                    let mut fast = data[start..start + len].to_vec();
                    let mut naive = fast.clone();
                    apply_mask(&mut fast, mask, offset);
                    apply_mask_naive(&mut naive, mask, offset);
                    assert_eq!(fast, naive, "start {start} len {len} offset {offset}");
                }
            }
        }
    }

    #[test]
    fn masking_in_pieces_equals_masking_at_once() {
        let mask = [1, 2, 3, 4];
        let data: Vec<u8> = (0..100u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, mask, 0);
        for cut in 0..data.len() {
            let mut pieces = data.clone();
            let (a, b) = pieces.split_at_mut(cut);
            apply_mask(a, mask, 0);
            apply_mask(b, mask, cut);
            assert_eq!(pieces, whole, "cut {cut}");
        }
    }

    #[test]
    fn masking_twice_restores() {
        let mut data = b"Hello, WebSocket".to_vec();
        apply_mask(&mut data, [9, 8, 7, 6], 1);
        apply_mask(&mut data, [9, 8, 7, 6], 1);
        assert_eq!(data, b"Hello, WebSocket");
    }
}
