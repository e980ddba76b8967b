//! Hexadecimal, as digests and signatures are written: 32 bytes in 64 digits.

/// `bytes` as lower-case hexadecimal digits.
#[cfg(any(
    feature = "file",
    feature = "webhooks",
    feature = "secret-scanning",
    test
))]
pub(crate) fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// 32 bytes written as 64 hexadecimal digits, in either case; `None` for anything else.
pub(crate) fn decode32(text: &[u8]) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    // Every digit's value, or 16 for a byte that is none: one check for the whole text.
    let mut invalid = 0u8;
    for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
        let (high, low) = (VALUE[usize::from(pair[0])], VALUE[usize::from(pair[1])]);
        invalid |= (high | low) & 0x10;
        *byte = (high << 4) | (low & 0x0f);
    }
    (invalid == 0).then_some(bytes)
}

/// The value of each hexadecimal digit; 16 for any other byte.
const VALUE: [u8; 256] = {
    let mut table = [16u8; 256];
    let mut digit = 0;
    while digit < 10 {
        table[b'0' as usize + digit] = digit as u8;
        digit += 1;
    }
    let mut letter = 0;
    while letter < 6 {
        table[b'a' as usize + letter] = 10 + letter as u8;
        table[b'A' as usize + letter] = 10 + letter as u8;
        letter += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_either_case_and_nothing_else() {
        let lower = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let bytes = decode32(lower.as_bytes()).unwrap();
        assert_eq!(bytes[..2], [0x75, 0x71]);
        assert_eq!(encode(&bytes), lower);
        assert_eq!(decode32(lower.to_ascii_uppercase().as_bytes()), Some(bytes));
        for bad in [b'g', b' ', b'/', b':', b'@', b'G', 0xff] {
            let mut text = lower.as_bytes().to_vec();
            text[17] = bad;
            assert_eq!(decode32(&text), None, "{bad:#04x}");
        }
        assert_eq!(decode32(&lower.as_bytes()[..62]), None);
    }
}
