//! Made-up messages: proptest strategies for forgeries, and aiming them at a receiver
//! either as sent or broken by a defect that validation must refuse.

use super::*;

pub(super) fn index() -> impl Strategy<Value = Index> {
    prop_oneof![
        4 => 0u64..24,
        1 => Just(MAX_INDEX),
        1 => Just(u64::MAX),
        1 => any::<u64>(),
    ]
}

pub(super) fn term() -> impl Strategy<Value = Term> {
    prop_oneof![
        6 => 0u64..12,
        1 => Just(MAX_TERM),
        1 => Just(u64::MAX),
        1 => any::<u64>(),
    ]
}

pub(super) fn term_choice() -> impl Strategy<Value = TermChoice> {
    prop_oneof![
        3 => (-2i8..3).prop_map(TermChoice::Relative),
        1 => term().prop_map(TermChoice::Absolute),
    ]
}

pub(super) fn body() -> impl Strategy<Value = BodySpec> {
    (
        0u8..15,
        any::<[bool; 3]>(),
        [index(), index(), index()],
        [term(), term()],
        prop::collection::vec((index(), term()), 0..4),
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(
            |(kind, flags, indices, terms, entries, contiguous, data)| BodySpec {
                kind,
                flags,
                indices,
                terms,
                entries,
                contiguous,
                data,
            },
        )
}

pub(super) fn defect() -> impl Strategy<Value = Defect> {
    prop_oneof![
        (0u64..1000).prop_map(Defect::TermBeyondMax),
        (0u64..1000).prop_map(Defect::TermTooFarAhead),
        Just(Defect::Misaddressed),
        Just(Defect::FromSelf),
        Just(Defect::FromZero),
        (1u64..1_000_000).prop_map(Defect::EntryGap),
        Just(Defect::EntryTermAboveMessage),
        Just(Defect::SnapshotAtZero),
        Just(Defect::SnapshotChunkOverflow),
        (0u8..7, 0u8..4).prop_map(|(kind, ahead)| Defect::AnswerFromTheFuture(kind, ahead)),
        Just(Defect::NotFromTheLeader),
    ]
}

pub(super) fn sender() -> impl Strategy<Value = NodeId> {
    prop_oneof![
        3 => 1u64..=3,
        2 => 4u64..=7,
        1 => Just(0u64),
        1 => Just(u64::MAX),
        1 => any::<u64>(),
    ]
}

pub(super) fn forgery() -> impl Strategy<Value = Forgery> {
    (
        sender(),
        prop::bool::weighted(0.05),
        term_choice(),
        body(),
        defect(),
    )
        .prop_map(|(from, to_other, term, body, defect)| Forgery {
            from,
            to_other,
            term,
            body,
            defect,
        })
}

pub(super) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0usize..3).prop_map(Op::Tick),
        20 => (0usize..4).prop_map(Op::Deliver),
        3 => (0usize..64).prop_map(Op::Deliver),
        2 => (0usize..64).prop_map(Op::Drop),
        10 => (0usize..3).prop_map(Op::Persist),
        3 => (0usize..3).prop_map(Op::Propose),
        6 => (0usize..3, forgery()).prop_map(|(k, f)| Op::Inject(k, f)),
    ]
}

pub(super) fn entries_of(spec: &BodySpec, prev: Index, message_term: Term) -> Vec<Entry> {
    let payload = |k: usize| match k % 3 {
        0 => EntryPayload::Command(Bytes::copy_from_slice(&spec.data)),
        1 => EntryPayload::Noop,
        _ => EntryPayload::Membership(Box::new(Membership::with_voters([1, 2, 3]))),
    };
    spec.entries
        .iter()
        .enumerate()
        .map(|(k, &(index, term))| {
            if spec.contiguous {
                // Plausible: contiguous from prev + 1, terms up to the message's.
                Entry {
                    index: prev.saturating_add(1 + k as u64),
                    term: message_term.min(term.max(spec.terms[0])),
                    payload: payload(k),
                }
            } else {
                Entry {
                    index,
                    term,
                    payload: payload(k),
                }
            }
        })
        .collect()
}

/// The body of a forgery; `kind` picks one of the fifteen message kinds.
pub(super) fn build_body(spec: &BodySpec, kind: u8, message_term: Term) -> MessageBody {
    let [a, b, c] = spec.indices;
    let [t0, t1] = spec.terms;
    let [f0, f1, f2] = spec.flags;
    let data = Bytes::copy_from_slice(&spec.data);
    match kind % 15 {
        0 => MessageBody::VoteRequest {
            pre_vote: f0,
            last_log_index: a,
            last_log_term: t0,
            transfer: f1,
        },
        1 => MessageBody::VoteResponse {
            pre_vote: f0,
            granted: f1,
        },
        2 => MessageBody::AppendResponse {
            success: f0,
            match_index: a,
            hint: f1.then_some(ConflictHint { index: b, term: t0 }),
        },
        3 => MessageBody::HeartbeatResponse { round: c },
        4 => MessageBody::SnapshotResponse {
            index: a,
            next_offset: b,
            installed: f0,
        },
        5 => MessageBody::TimeoutNow,
        6 => MessageBody::ForwardProposal { id: c, data },
        7 => MessageBody::ForwardProposalResponse {
            id: c,
            result: if f0 {
                Ok((a, t0))
            } else {
                Err(ProposalError::Dropped)
            },
        },
        8 => MessageBody::ReadIndexRequest { id: c },
        9 => MessageBody::ReadIndexResponse {
            id: c,
            result: if f0 { Ok(a) } else { Err(ReadError::Timeout) },
        },
        10 | 11 => MessageBody::Append {
            prev_log_index: a,
            prev_log_term: if a == 0 { 0 } else { t1 },
            entries: entries_of(spec, a, message_term),
            leader_commit: b,
        },
        12 => MessageBody::Heartbeat {
            commit: a,
            round: c,
        },
        // No data: the harness's state machine decodes restored snapshot bytes, and garbage
        // would fail the harness rather than the core (offsets and metadata stay arbitrary).
        _ => MessageBody::SnapshotChunk {
            meta: Box::new(SnapshotMeta {
                index: a,
                term: t0,
                membership: Membership::with_voters([1, 2, 3]),
            }),
            offset: b % 64,
            data: Bytes::new(),
            done: f2,
        },
    }
}

/// True for kinds a stranger may send in the "strangers" property: nothing that claims
/// leadership (append, heartbeat, snapshot chunk).
pub(super) fn stranger_kind(kind: u8) -> bool {
    !matches!(kind % 15, 10..=14)
}

pub(super) fn resolve_term(choice: TermChoice, own: Term) -> Term {
    match choice {
        TermChoice::Absolute(term) => term,
        TermChoice::Relative(delta) if delta < 0 => own.saturating_sub(delta.unsigned_abs().into()),
        TermChoice::Relative(delta) => own.saturating_add(delta as u64),
    }
}

/// The forgery as sent, unbroken.
pub(super) fn aim(
    forgery: &Forgery,
    cluster: &Cluster,
    to: NodeId,
    kind_filter: fn(u8) -> bool,
) -> Message {
    let own = cluster.node(to).term();
    let term = resolve_term(forgery.term, own);
    let mut kind = forgery.body.kind;
    while !kind_filter(kind) {
        kind = kind.wrapping_add(1) % 15;
    }
    let to_field = if forgery.to_other { to % 3 + 1 } else { to };
    Message {
        from: forgery.from,
        to: to_field,
        term,
        body: build_body(&forgery.body, kind, term),
    }
}

/// The forgery, broken by its defect so that validation must refuse it.
pub(super) fn aim_invalid(forgery: &Forgery, cluster: &Cluster, to: NodeId) -> Message {
    let node = cluster.node(to);
    let own = node.term();
    let mut message = aim(forgery, cluster, to, |_| true);
    message.to = to;
    if message.from == to || message.from == 0 {
        message.from = to % 3 + 1;
    }
    let leader_message = |kind: u8| build_body(&forgery.body, 10 + kind % 5, own);
    match forgery.defect {
        Defect::TermBeyondMax(extra) => message.term = MAX_TERM + 1 + extra,
        Defect::TermTooFarAhead(extra) => message.term = own + MAX_TERM_JUMP + 1 + extra,
        Defect::Misaddressed => message.to = [7, 0, to % 3 + 1][forgery.body.kind as usize % 3],
        Defect::FromSelf => message.from = to,
        Defect::FromZero => message.from = 0,
        Defect::EntryGap(gap) => {
            message.term = own.max(1);
            let prev = forgery.body.indices[0] % 32;
            message.body = MessageBody::Append {
                prev_log_index: prev,
                prev_log_term: if prev == 0 { 0 } else { 1 },
                entries: vec![Entry {
                    index: prev + 1 + gap,
                    term: message.term,
                    payload: EntryPayload::Noop,
                }],
                leader_commit: prev + 1 + gap,
            };
        }
        Defect::EntryTermAboveMessage => {
            message.term = own.max(1);
            message.body = MessageBody::Append {
                prev_log_index: 0,
                prev_log_term: 0,
                entries: vec![Entry {
                    index: 1,
                    term: message.term + 1,
                    payload: EntryPayload::Noop,
                }],
                leader_commit: 1,
            };
        }
        Defect::SnapshotAtZero | Defect::SnapshotChunkOverflow => {
            let overflow = matches!(forgery.defect, Defect::SnapshotChunkOverflow);
            message.term = own.max(1);
            message.body = MessageBody::SnapshotChunk {
                meta: Box::new(SnapshotMeta {
                    index: if overflow { 5 } else { 0 },
                    term: if overflow { 1 } else { 0 },
                    membership: Membership::with_voters([1, 2, 3]),
                }),
                offset: if overflow { u64::MAX } else { 0 },
                data: Bytes::from_static(b"x"),
                done: true,
            };
        }
        Defect::AnswerFromTheFuture(kind, ahead) => {
            // Kinds that only answer something the receiver sent in its own term.
            let answers = [1, 3, 4, 5, 6, 7, 8];
            let kind = answers[kind as usize % answers.len()];
            message.body = build_body(&forgery.body, kind, own);
            if let MessageBody::VoteResponse {
                pre_vote: true,
                granted,
            } = &mut message.body
            {
                *granted = true; // a refused pre-vote may announce a newer term
            }
            let granted_pre_vote = matches!(
                message.body,
                MessageBody::VoteResponse {
                    pre_vote: true,
                    granted: true
                }
            );
            let margin = if granted_pre_vote { 2 } else { 1 };
            message.term = own + margin + u64::from(ahead);
            if let MessageBody::ForwardProposalResponse { result: Ok(r), .. } = &mut message.body {
                *r = (1, 1);
            }
        }
        Defect::NotFromTheLeader => {
            let known = if node.role() == Role::Leader {
                Some(to)
            } else {
                node.leader()
            };
            match known {
                Some(leader) if own > 0 => {
                    message.term = own;
                    message.from = if leader == 3 { 5 } else { 3 }.max(1);
                    if message.from == to {
                        message.from = 6;
                    }
                    message.body = leader_message(forgery.body.kind);
                    if let MessageBody::SnapshotChunk { meta, offset, .. } = &mut message.body {
                        // Keep the snapshot well-formed: the sender is what is wrong.
                        meta.index = meta.index.clamp(1, 64);
                        meta.term = meta.term.clamp(1, own);
                        *offset = 0;
                    }
                    if let MessageBody::Append {
                        prev_log_index,
                        prev_log_term,
                        entries,
                        leader_commit,
                    } = &mut message.body
                    {
                        *prev_log_index = 0;
                        *prev_log_term = 0;
                        entries.clear();
                        *leader_commit = 0;
                    }
                    if let MessageBody::Heartbeat { commit, .. } = &mut message.body {
                        *commit = 0;
                    }
                }
                _ => message.term = u64::MAX,
            }
        }
    }
    message
}
