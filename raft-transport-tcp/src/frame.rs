//! Framing: each message travels as a big-endian `u32` body length followed by the
//! postcard encoding of a [`Message`].
//!
//! Both directions check the limit: [`encode_frame`] refuses to produce a frame the peer
//! would refuse, and [`FrameDecoder`] rejects an oversized length prefix before a single
//! byte of the body is buffered. The connection reader grows its buffer only as bytes actually
//! arrive, so a peer that announces a large frame and stalls holds no more memory than it
//! sent.

use bytes::{Buf, BytesMut};
use raft_core::{Message, MessageBody};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::append_slices::{self, SLICE_MIN_PAYLOAD_BYTES};
use crate::error::{ConnectionError, FrameError};

/// Bytes of the length prefix.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// Most bytes requested from the socket per read: large enough that a 64 KiB append costs
/// one or two reads, small enough that an idle connection holds little.
const READ_CHUNK_BYTES: usize = 64 << 10;

/// Appends one frame holding `message` to `out`, returning the frame's total size.
///
/// On error `out` is left as it was, so a batch being coalesced stays well-formed.
pub fn encode_frame(
    message: &Message,
    max_frame_bytes: u32,
    out: &mut Vec<u8>,
) -> Result<usize, FrameError> {
    let start = out.len();
    // Room for the whole frame at once: growing as postcard writes would copy a large
    // payload again and leave a buffer twice its size.
    let max_body_bytes = usize::try_from(max_frame_bytes).unwrap_or(usize::MAX);
    out.reserve(LENGTH_PREFIX_BYTES + body_size_hint(message).min(max_body_bytes));
    out.extend_from_slice(&[0; LENGTH_PREFIX_BYTES]);
    // `to_io` writes byte strings (payloads) as whole slices, so a 64 KiB command is one
    // memcpy rather than 64 Ki pushes.
    if let Err(error) = postcard::to_io(message, &mut *out) {
        out.truncate(start);
        return Err(FrameError::Garbled(error));
    }
    let body_bytes = out.len() - start - LENGTH_PREFIX_BYTES;
    let length = match u32::try_from(body_bytes) {
        Ok(length) if length <= max_frame_bytes => length,
        _ => {
            out.truncate(start);
            return Err(FrameError::Oversized {
                len_bytes: body_bytes as u64,
                max_bytes: max_frame_bytes,
            });
        }
    };
    out[start..start + LENGTH_PREFIX_BYTES].copy_from_slice(&length.to_be_bytes());
    Ok(out.len() - start)
}

/// About the size of `message`'s postcard body: its payload bytes plus room for the
/// fixed fields. Only a capacity hint; the encoding decides the real size.
fn body_size_hint(message: &Message) -> usize {
    /// Room for the fields around the payloads (ids, terms, indexes, varint lengths).
    const FIELDS_BYTES: usize = 64;
    let payload_bytes = match &message.body {
        MessageBody::Append { entries, .. } => entries
            .iter()
            .map(|entry| usize::try_from(entry.size_bytes()).unwrap_or(usize::MAX))
            .fold(0, usize::saturating_add),
        MessageBody::SnapshotChunk { data, .. } | MessageBody::ForwardProposal { data, .. } => {
            data.len()
        }
        _ => 0,
    };
    payload_bytes.saturating_add(FIELDS_BYTES)
}

/// Splits a byte stream into messages. Holds only the limit; the caller owns the buffer.
#[derive(Clone, Copy, Debug)]
pub struct FrameDecoder {
    max_frame_bytes: u32,
}

impl FrameDecoder {
    /// A decoder that rejects frame bodies longer than `max_frame_bytes`.
    pub fn new(max_frame_bytes: u32) -> Self {
        FrameDecoder { max_frame_bytes }
    }

    /// Takes one complete frame off the front of `buffer` and decodes it.
    ///
    /// Returns `Ok(None)` when more bytes are needed (`buffer` untouched), and an error as
    /// soon as the length prefix is over the limit or a complete body does not decode. After
    /// an error the stream cannot be resynchronised: close the connection.
    pub fn decode(&self, buffer: &mut BytesMut) -> Result<Option<Message>, FrameError> {
        let Some(body_bytes) = self.body_length(buffer)? else {
            return Ok(None);
        };
        if buffer.len() < LENGTH_PREFIX_BYTES + body_bytes {
            return Ok(None);
        }
        buffer.advance(LENGTH_PREFIX_BYTES);
        let body = buffer.split_to(body_bytes);
        if body_bytes >= SLICE_MIN_PAYLOAD_BYTES {
            // Large payloads become slices of the frame instead of copies; the frame's
            // buffer then lives as long as the entries that point into it.
            let body = body.freeze();
            if let Some(message) = append_slices::decode_append(&body) {
                return Ok(Some(message));
            }
            return decode_body(&body).map(Some);
        }
        decode_body(&body).map(Some)
    }

    /// The frame's end (prefix included) when its length prefix has arrived.
    fn frame_end(&self, buffer: &BytesMut) -> Result<Option<usize>, FrameError> {
        Ok(self
            .body_length(buffer)?
            .map(|body_bytes| LENGTH_PREFIX_BYTES + body_bytes))
    }

    /// The body length announced at the front of `buffer`, checked against the limit.
    fn body_length(&self, buffer: &BytesMut) -> Result<Option<usize>, FrameError> {
        let Some(prefix) = buffer.get(..LENGTH_PREFIX_BYTES) else {
            return Ok(None);
        };
        let mut length_bytes = [0; LENGTH_PREFIX_BYTES];
        length_bytes.copy_from_slice(prefix);
        let length = u32::from_be_bytes(length_bytes);
        if length > self.max_frame_bytes {
            return Err(FrameError::Oversized {
                len_bytes: u64::from(length),
                max_bytes: self.max_frame_bytes,
            });
        }
        // A u32 always fits in usize on the 32- and 64-bit targets tokio supports.
        Ok(Some(length as usize))
    }
}

/// Decodes one whole frame body with postcard.
fn decode_body(body: &[u8]) -> Result<Message, FrameError> {
    let (message, rest) = postcard::take_from_bytes::<Message>(body)?;
    if !rest.is_empty() {
        return Err(FrameError::TrailingBytes {
            extra_bytes: rest.len(),
        });
    }
    Ok(message)
}

/// Reads the next message from `reader`, buffering in `buffer` (kept between calls so that
/// bytes of the following frames read in the same system call are not lost).
///
/// Returns the message with the size of its frame, `Ok(None)` on a clean end of stream
/// (between frames) and [`FrameError::Truncated`] if the stream ends inside a frame.
pub(crate) async fn read_frame<R>(
    reader: &mut R,
    buffer: &mut BytesMut,
    decoder: FrameDecoder,
) -> Result<Option<(Message, usize)>, ConnectionError>
where
    R: AsyncRead + Unpin,
{
    loop {
        let buffered_bytes = buffer.len();
        if let Some(message) = decoder.decode(buffer)? {
            return Ok(Some((message, buffered_bytes - buffer.len())));
        }
        grow_for_frame(buffer, decoder.frame_end(buffer)?);
        if reader.read_buf(buffer).await? == 0 {
            if buffer.is_empty() {
                return Ok(None);
            }
            return Err(FrameError::Truncated {
                buffered_bytes: buffer.len(),
            }
            .into());
        }
    }
}

/// Makes room for the next read. A frame larger than one read gets a buffer of exactly its
/// size, reached by at most doubling what already arrived, so memory follows the bytes
/// that actually arrived rather than what a length prefix promised, and the buffer (which
/// large payloads keep alive as slices) holds nothing but the frame. Otherwise a read-sized
/// step, which may also take in the frames that follow.
fn grow_for_frame(buffer: &mut BytesMut, frame_end: Option<usize>) {
    match frame_end {
        Some(end) if end > READ_CHUNK_BYTES => {
            let target = end.min(buffer.len().max(READ_CHUNK_BYTES) * 2);
            if buffer.capacity() < target {
                let mut grown = BytesMut::with_capacity(target);
                grown.extend_from_slice(buffer);
                *buffer = grown;
            }
        }
        _ => buffer.reserve(READ_CHUNK_BYTES),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;
    use raft_core::{Entry, EntryPayload, MessageBody};
    use tokio::io::AsyncWriteExt;

    use super::*;

    const MAX_FRAME_BYTES: u32 = 1 << 20;

    fn heartbeat(from: u64, round: u64) -> Message {
        Message {
            from,
            to: 2,
            term: 3,
            body: MessageBody::Heartbeat { commit: 9, round },
        }
    }

    fn append(payload_bytes: usize) -> Message {
        Message {
            from: 1,
            to: 2,
            term: 3,
            body: MessageBody::Append {
                prev_log_index: 4,
                prev_log_term: 3,
                entries: vec![Entry {
                    term: 3,
                    index: 5,
                    payload: EntryPayload::Command(Bytes::from(vec![7; payload_bytes])),
                }],
                leader_commit: 4,
            },
        }
    }

    fn decode_all(bytes: &[u8], max_frame_bytes: u32) -> Result<Vec<Message>, FrameError> {
        let decoder = FrameDecoder::new(max_frame_bytes);
        let mut buffer = BytesMut::from(bytes);
        let mut messages = Vec::new();
        while let Some(message) = decoder.decode(&mut buffer)? {
            messages.push(message);
        }
        Ok(messages)
    }

    /// Goal: frames round-trip, back to back, in one buffer.
    #[test]
    fn frames_round_trip_back_to_back() {
        let messages = vec![heartbeat(1, 1), append(1000), heartbeat(1, 2)];
        let mut bytes = Vec::new();
        for message in &messages {
            encode_frame(message, MAX_FRAME_BYTES, &mut bytes).expect("small frame");
        }
        assert_eq!(
            decode_all(&bytes, MAX_FRAME_BYTES).expect("valid"),
            messages
        );
    }

    /// Goal: a large message is encoded into a buffer sized for it once, not grown to
    /// twice its size while postcard writes.
    #[test]
    fn large_frame_is_encoded_without_regrowth() {
        let mut bytes = Vec::new();
        let frame_bytes = encode_frame(&append(1 << 20), 2 << 20, &mut bytes).expect("fits");
        assert!(
            bytes.capacity() < frame_bytes + 1024,
            "{}",
            bytes.capacity()
        );
    }

    /// Goal: the encoder refuses what the decoder would refuse, and leaves a batch that is
    /// being coalesced intact.
    #[test]
    fn encoder_refuses_oversized_and_keeps_batch() {
        let mut bytes = Vec::new();
        encode_frame(&heartbeat(1, 1), 64, &mut bytes).expect("small frame");
        let before = bytes.clone();
        let error = encode_frame(&append(100), 64, &mut bytes).expect_err("too big");
        assert!(matches!(error, FrameError::Oversized { max_bytes: 64, .. }));
        assert_eq!(bytes, before);
    }

    /// Goal: a 4 GiB length prefix is refused from the prefix alone, without reserving
    /// memory for the body.
    #[test]
    fn huge_length_prefix_is_refused_before_allocation() {
        let mut buffer = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 1, 2][..]);
        let capacity = buffer.capacity();
        let decoder = FrameDecoder::new(MAX_FRAME_BYTES);
        assert!(matches!(
            decoder.decode(&mut buffer),
            Err(FrameError::Oversized {
                len_bytes: 0xffff_ffff,
                ..
            })
        ));
        assert_eq!(buffer.capacity(), capacity);
    }

    /// Goal: a body with bytes after the message is refused (the two sides disagree on the
    /// format), as is a body that is not a message.
    #[test]
    fn trailing_and_garbled_bodies_are_refused() {
        let mut bytes = Vec::new();
        encode_frame(&heartbeat(1, 1), MAX_FRAME_BYTES, &mut bytes).expect("small frame");
        let body_bytes = bytes.len() - LENGTH_PREFIX_BYTES + 1;
        bytes[..4].copy_from_slice(&(body_bytes as u32).to_be_bytes());
        bytes.push(0);
        assert!(matches!(
            decode_all(&bytes, MAX_FRAME_BYTES),
            Err(FrameError::TrailingBytes { extra_bytes: 1 })
        ));
        let garbled = [0, 0, 0, 2, 0xff, 0xff];
        assert!(matches!(
            decode_all(&garbled, MAX_FRAME_BYTES),
            Err(FrameError::Garbled(_))
        ));
    }

    /// Goal: a peer that announces a big frame and then trickles bytes makes the reader hold
    /// memory in proportion to what arrived, not to what was announced.
    #[tokio::test]
    async fn reader_memory_follows_bytes_received() {
        let (mut writer, mut reader) = tokio::io::duplex(1 << 16);
        let announced_bytes: u32 = 16 << 20;
        let mut sent = announced_bytes.to_be_bytes().to_vec();
        sent.extend_from_slice(&[0; 1000]);
        writer.write_all(&sent).await.expect("duplex write");
        drop(writer);
        let mut buffer = BytesMut::new();
        let result = read_frame(&mut reader, &mut buffer, FrameDecoder::new(32 << 20)).await;
        assert!(matches!(
            result,
            Err(ConnectionError::Frame(FrameError::Truncated {
                buffered_bytes: 1004
            }))
        ));
        assert!(
            buffer.capacity() <= 2 * READ_CHUNK_BYTES,
            "{}",
            buffer.capacity()
        );
    }

    /// Goal: a frame much larger than one read arrives whole through the growing buffer,
    /// and the frame after it is not lost.
    #[tokio::test]
    async fn large_frame_arrives_whole_and_the_next_follows() {
        let (mut writer, mut reader) = tokio::io::duplex(1 << 16);
        let messages = [append(1 << 20), heartbeat(1, 1)];
        let mut bytes = Vec::new();
        let large_frame_bytes = encode_frame(&messages[0], 2 << 20, &mut bytes).expect("fits");
        encode_frame(&messages[1], 2 << 20, &mut bytes).expect("fits");
        tokio::spawn(async move { writer.write_all(&bytes).await });
        let decoder = FrameDecoder::new(2 << 20);
        let mut buffer = BytesMut::new();
        let (first, size) = read_frame(&mut reader, &mut buffer, decoder)
            .await
            .expect("valid")
            .expect("a frame");
        assert_eq!(first, messages[0]);
        assert_eq!(size, large_frame_bytes);
        let (second, _) = read_frame(&mut reader, &mut buffer, decoder)
            .await
            .expect("valid")
            .expect("a frame");
        assert_eq!(second, messages[1]);
    }

    /// Goal: a clean end of stream between frames is not an error.
    #[tokio::test]
    async fn clean_end_of_stream_between_frames() {
        let (mut writer, mut reader) = tokio::io::duplex(1 << 16);
        let mut bytes = Vec::new();
        encode_frame(&heartbeat(1, 1), MAX_FRAME_BYTES, &mut bytes).expect("small frame");
        writer.write_all(&bytes).await.expect("duplex write");
        drop(writer);
        let mut buffer = BytesMut::new();
        let decoder = FrameDecoder::new(MAX_FRAME_BYTES);
        let first = read_frame(&mut reader, &mut buffer, decoder)
            .await
            .expect("valid");
        assert_eq!(first, Some((heartbeat(1, 1), bytes.len())));
        let end = read_frame(&mut reader, &mut buffer, decoder)
            .await
            .expect("clean");
        assert_eq!(end, None);
    }

    fn message_strategy() -> impl Strategy<Value = Message> {
        let body = prop_oneof![
            (any::<u64>(), any::<u64>())
                .prop_map(|(commit, round)| MessageBody::Heartbeat { commit, round }),
            any::<u64>().prop_map(|round| MessageBody::HeartbeatResponse { round }),
            (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..300)).prop_map(
                |(index, data)| MessageBody::Append {
                    prev_log_index: index,
                    prev_log_term: 1,
                    entries: vec![Entry {
                        term: 1,
                        index: index.wrapping_add(1),
                        payload: EntryPayload::Command(Bytes::from(data)),
                    }],
                    leader_commit: index,
                }
            ),
            Just(MessageBody::TimeoutNow),
        ];
        (1..u64::MAX, 1..u64::MAX, any::<u64>(), body).prop_map(|(from, to, term, body)| Message {
            from,
            to,
            term,
            body,
        })
    }

    proptest! {
        /// Invariant: whatever bytes arrive, the decoder returns messages or an error; it
        /// never panics, and it never returns a message from an oversized frame.
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048),
            max_frame_bytes in 0u32..4096,
        ) {
            let decoder = FrameDecoder::new(max_frame_bytes);
            let mut buffer = BytesMut::from(&bytes[..]);
            let mut consumed = 0;
            loop {
                let before = buffer.len();
                match decoder.decode(&mut buffer) {
                    Ok(Some(_)) => {
                        let frame_bytes = before - buffer.len();
                        prop_assert!(frame_bytes - LENGTH_PREFIX_BYTES <= max_frame_bytes as usize);
                        consumed += frame_bytes;
                    }
                    Ok(None) => break,
                    Err(_) => break,
                }
            }
            prop_assert!(consumed <= bytes.len());
        }

        /// Invariant: a valid stream decodes to the messages encoded, however the bytes are
        /// split into reads.
        #[test]
        fn valid_stream_decodes_in_any_split(
            messages in proptest::collection::vec(message_strategy(), 1..8),
            split_points in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut bytes = Vec::new();
            for message in &messages {
                encode_frame(message, MAX_FRAME_BYTES, &mut bytes).expect("small frame");
            }
            let mut cuts: Vec<usize> = split_points.iter().map(|i| i.index(bytes.len())).collect();
            cuts.push(bytes.len());
            cuts.sort_unstable();
            let decoder = FrameDecoder::new(MAX_FRAME_BYTES);
            let mut buffer = BytesMut::new();
            let mut decoded = Vec::new();
            let mut start = 0;
            for cut in cuts {
                buffer.extend_from_slice(&bytes[start..cut]);
                start = cut;
                while let Some(message) = decoder.decode(&mut buffer).expect("valid stream") {
                    decoded.push(message);
                }
            }
            prop_assert!(buffer.is_empty());
            prop_assert_eq!(decoded, messages);
        }

        /// Invariant: flipping bytes of a valid stream never panics the decoder.
        #[test]
        fn corrupted_stream_never_panics(
            message in message_strategy(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        ) {
            let mut bytes = Vec::new();
            encode_frame(&message, MAX_FRAME_BYTES, &mut bytes).expect("small frame");
            for (at, value) in flips {
                let position = at.index(bytes.len());
                bytes[position] = value;
            }
            let _ = decode_all(&bytes, MAX_FRAME_BYTES);
        }
    }
}
