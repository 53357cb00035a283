//! Network commands: `deliver`, `drop`, `stabilize`, `partition`, `cut`, `messages`.

use goldenscript::Command;
use raft_core::{Message, NodeId};

use super::render::render_message;
use super::{Runner, parse};

/// Which queued messages a `deliver` or `drop` applies to.
struct Filter {
    from: Option<NodeId>,
    to: Option<NodeId>,
    kind: Option<String>,
    count: usize,
}

impl Filter {
    fn parse(command: &Command) -> Result<Filter, String> {
        let mut args = command.consume_args();
        let filter = Filter {
            from: args.take_key("from").map(parse).transpose()?,
            to: args.take_key("to").map(parse).transpose()?,
            kind: args.take_key("type").map(str::to_string),
            count: args.take_key("count").map_or(Ok(usize::MAX), parse)?,
        };
        args.reject_next().map_err(|e| e.to_string())?;
        Ok(filter)
    }

    fn matches(&self, message: &Message) -> bool {
        self.from.is_none_or(|f| f == message.from)
            && self.to.is_none_or(|t| t == message.to)
            && self.kind.as_ref().is_none_or(|k| k == message.kind())
    }
}

impl Runner {
    /// `deliver|drop [from=N] [to=N] [type=KIND] [count=K]`: takes the matching messages
    /// queued now (not those they cause), in order, and delivers or drops them. `type` is
    /// `Message::kind()`, e.g. `append`, `append_response`, `vote_request`.
    pub(super) fn deliver(&mut self, command: &Command, deliver: bool) -> Result<(), String> {
        let filter = Filter::parse(command)?;
        let mut taken = Vec::new();
        let mut kept = std::collections::VecDeque::new();
        for message in self.cluster.network.drain(..) {
            if taken.len() < filter.count && filter.matches(&message) {
                taken.push(message);
            } else {
                kept.push_back(message);
            }
        }
        self.cluster.network = kept;
        for message in taken {
            if deliver {
                self.cluster.deliver(message);
            } else {
                let text = render_message(&message, &mut self.cluster.aliases);
                self.cluster.line(0, &format!("{text} [dropped]"));
            }
        }
        Ok(())
    }

    /// Delivers every queued message, round after round, until the network is empty.
    pub(super) fn stabilize(&mut self, max_rounds: usize) -> Result<(), String> {
        for _ in 0..max_rounds {
            if self.cluster.network.is_empty() {
                return Ok(());
            }
            let round: Vec<Message> = self.cluster.network.drain(..).collect();
            for message in round {
                self.cluster.deliver(message);
            }
        }
        if self.cluster.network.is_empty() {
            Ok(())
        } else {
            Err(format!("network not quiet after {max_rounds} rounds"))
        }
    }

    /// `partition 1 2`: cuts every link between {1, 2} and the other nodes, both ways.
    pub(super) fn partition(&mut self, command: &Command) -> Result<(), String> {
        let group = self.ids(command)?;
        let all: Vec<NodeId> = self.cluster.hosts.keys().copied().collect();
        for &inside in &group {
            for &outside in all.iter().filter(|id| !group.contains(id)) {
                self.cluster.cut.insert((inside, outside));
                self.cluster.cut.insert((outside, inside));
            }
        }
        Ok(())
    }

    /// `cut from=1 to=2`: drops every message from 1 to 2 (one way).
    pub(super) fn cut(&mut self, command: &Command) -> Result<(), String> {
        let mut args = command.consume_args();
        let from = parse(args.take_key("from").ok_or("from= missing")?)?;
        let to = parse(args.take_key("to").ok_or("to= missing")?)?;
        self.cluster.cut.insert((from, to));
        Ok(())
    }

    pub(super) fn messages(&mut self) {
        let lines: Vec<String> = self
            .cluster
            .network
            .clone()
            .iter()
            .map(|m| render_message(m, &mut self.cluster.aliases))
            .collect();
        if lines.is_empty() {
            self.cluster.line(0, "no messages");
        }
        for line in lines {
            self.cluster.line(0, &line);
        }
    }
}
