//! The random numbers one session draws: PPP magic numbers and
//! identifiers, IPv6 interface identifiers, authentication challenges.
//!
//! A session draws a few dozen bytes in its life, nearly all of them
//! during setup, yet `rand`'s `StdRng` keeps a 256-byte block of key
//! stream and its state in every instance: 320 bytes for the PPP link and
//! as many again for its authentication machine, for as long as the
//! session lives. [`SessionRng`] keeps only the ChaCha12 key and the
//! position in its stream (48 bytes) and rebuilds the generator for each
//! draw. The stream is `ChaCha12Rng`'s word for word, so it is as
//! unpredictable as `StdRng` (the same cipher, seeded from the caller's
//! generator), only slower per draw, which the setup path does not notice.

use rand::{CryptoRng, RngCore, SeedableRng};
use rand_chacha::ChaCha12Rng;

/// A ChaCha12 stream kept as its key and position: see the module doc.
#[derive(Clone, Debug)]
pub struct SessionRng {
    key: [u8; 32],
    /// The next 32-bit word of the stream to hand out.
    word_pos: u128,
}

impl SessionRng {
    /// The stream of `key`, from its start.
    pub fn from_seed(key: [u8; 32]) -> Self {
        SessionRng { key, word_pos: 0 }
    }

    /// A stream keyed from `rng`.
    pub fn from_rng(rng: &mut dyn RngCore) -> Self {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        SessionRng::from_seed(key)
    }

    fn draw<T>(&mut self, take: impl FnOnce(&mut ChaCha12Rng) -> T) -> T {
        let mut stream = ChaCha12Rng::from_seed(self.key);
        stream.set_word_pos(self.word_pos);
        let drawn = take(&mut stream);
        self.word_pos = stream.get_word_pos();
        drawn
    }
}

impl RngCore for SessionRng {
    fn next_u32(&mut self) -> u32 {
        self.draw(|stream| stream.next_u32())
    }

    fn next_u64(&mut self) -> u64 {
        self.draw(|stream| stream.next_u64())
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.draw(|stream| stream.fill_bytes(dest))
    }
}

impl CryptoRng for SessionRng {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Draw by draw, in any mix of sizes, the bytes are the ones one
    /// `ChaCha12Rng` of the same key hands out.
    #[test]
    fn draws_continue_the_chacha12_stream() {
        let key = [7u8; 32];
        let mut compact = SessionRng::from_seed(key);
        let mut reference = ChaCha12Rng::from_seed(key);
        for round in 0..200usize {
            match round % 4 {
                0 => assert_eq!(compact.next_u32(), reference.next_u32()),
                1 => assert_eq!(compact.next_u64(), reference.next_u64()),
                _ => {
                    let len = round % 37;
                    let (mut a, mut b) = (vec![0u8; len], vec![0u8; len]);
                    compact.fill_bytes(&mut a);
                    reference.fill_bytes(&mut b);
                    assert_eq!(a, b, "round {round}");
                }
            }
        }
    }

    #[test]
    fn it_is_smaller_than_std_rng() {
        assert!(std::mem::size_of::<SessionRng>() <= 48);
    }

    #[test]
    fn different_keys_give_different_streams() {
        let mut a = SessionRng::from_seed([1; 32]);
        let mut b = SessionRng::from_seed([2; 32]);
        assert_ne!(a.next_u64(), b.next_u64());
    }
}
