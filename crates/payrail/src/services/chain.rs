//! `payrail verify`'s chain check and `payrail anchor` (issue 15, item 6):
//! recomputes every partner's chain of history rows and journals (see
//! `store::chain`) and names the first broken link of each.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::domain::Timestamp;
use crate::store::chain::{describe, link_hash, ChainHead, ChainStore, Link, LinkCursor, LinkTable};
use crate::store::StoreError;

/// How many links one read brings.
const PAGE: u32 = 5_000;
/// How many rows without a hash a report lists.
const UNSEALED_LISTED: u32 = 20;

/// The heads an auditor keeps, as `payrail anchor` prints them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// When the heads were read (India time, `YYYY-MM-DD HH:MM:SS`).
    pub anchored_at: String,
    /// Each chain's head then.
    pub chains: Vec<AnchoredHead>,
}

/// One chain's head in an [`Anchor`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchoredHead {
    /// The partner's number (`AOP-<n>`; 0 for rows whose record is gone).
    pub partner: i64,
    /// The number of the head link.
    pub link: i64,
    /// Its hash.
    pub hash: String,
}

/// What [`verify`] found.
#[derive(Debug, Default)]
pub struct Verified {
    /// Links checked.
    pub links: u64,
    /// Chains checked.
    pub chains: usize,
    /// Each broken chain's first broken link, and every row without a hash.
    pub breaks: Vec<String>,
}

/// Reads the heads now.
pub async fn anchor(store: &dyn ChainStore, now: Timestamp) -> Result<Anchor, StoreError> {
    let chains = store
        .chain_heads()
        .await?
        .into_iter()
        .map(|head| AnchoredHead { partner: head.partner, link: head.seq, hash: head.hash })
        .collect();
    Ok(Anchor { anchored_at: now.to_ist_string(), chains })
}

/// Recomputes every chain; with `anchor`, also checks that each chain
/// still holds the anchored head.
///
/// The store may be written meanwhile (a server left running), and each
/// page is its own read. So the heads are read first, and only the links
/// up to each head are walked: those were committed with or before their
/// head, so every later page sees them. A link past its head was written
/// after the heads were read; once the walk is done the heads are read
/// again, and a link past even those is one no writer made.
pub async fn verify(store: &dyn ChainStore, anchor: Option<&Anchor>) -> Result<Verified, StoreError> {
    let heads: BTreeMap<i64, ChainHead> =
        store.chain_heads().await?.into_iter().map(|head| (head.partner, head)).collect();
    let anchored =
        anchor.map(|a| a.chains.iter().map(|head| (head.partner, head.clone())).collect()).unwrap_or_default();
    let mut walk = Walk { heads: heads.clone(), anchored, found: Verified::default(), chain: None };
    let mut history = Pages::new(LinkTable::History);
    let mut journals = Pages::new(LinkTable::Journal);
    // The last link number seen past each partner's head.
    let mut past_head: BTreeMap<i64, i64> = BTreeMap::new();
    loop {
        let next_history = history.peek(store).await?.map(key);
        let next_journal = journals.peek(store).await?.map(key);
        let link = match (next_history, next_journal) {
            (None, None) => break,
            (Some(h), Some(j)) if j < h => journals.pop(),
            (Some(_), _) => history.pop(),
            (None, Some(_)) => journals.pop(),
        };
        let Some(link) = link else { continue };
        if heads.get(&link.partner).is_none_or(|head| link.seq > head.seq) {
            past_head.insert(link.partner, link.seq);
        } else {
            walk.link(link);
        }
    }
    let mut found = walk.finish();
    if !past_head.is_empty() {
        let now: BTreeMap<i64, i64> =
            store.chain_heads().await?.into_iter().map(|head| (head.partner, head.seq)).collect();
        for (partner, seq) in past_head {
            let whose = partner_name(partner);
            match now.get(&partner) {
                None => found.breaks.push(format!("{whose} has no head (chain_heads): it was removed")),
                Some(&head) if seq > head => found.breaks.push(format!(
                    "{whose} has link {seq} past its head, link {head} (chain_heads): the head was changed"
                )),
                Some(_) => {}
            }
        }
    }
    for row in store.unsealed_links(UNSEALED_LISTED).await? {
        found.breaks.push(format!("{row} carries no hash: it was written or changed outside payrail"));
    }
    Ok(found)
}

fn key(link: &Link) -> (i64, i64) {
    (link.partner, link.seq)
}

fn partner_name(partner: i64) -> String {
    if partner == 0 {
        "the chain of rows whose record is gone".to_owned()
    } else {
        format!("AOP-{partner}'s chain")
    }
}

/// One table's links, a page at a time.
struct Pages {
    table: LinkTable,
    buffer: VecDeque<Link>,
    after: LinkCursor,
    done: bool,
}

impl Pages {
    fn new(table: LinkTable) -> Self {
        Pages { table, buffer: VecDeque::new(), after: LinkCursor::default(), done: false }
    }

    async fn peek(&mut self, store: &dyn ChainStore) -> Result<Option<&Link>, StoreError> {
        if self.buffer.is_empty() && !self.done {
            let page = store.chain_links(self.table, self.after, PAGE).await?;
            self.done = page.len() < PAGE as usize;
            if let Some(last) = page.last() {
                self.after = LinkCursor { partner: last.partner, seq: last.seq };
            }
            self.buffer.extend(page);
        }
        Ok(self.buffer.front())
    }

    fn pop(&mut self) -> Option<Link> {
        self.buffer.pop_front()
    }
}

/// Where the walk is in the chain it is checking.
struct Chain {
    partner: i64,
    /// The number the next link must have.
    next: i64,
    /// The last good link's row and hash.
    prev: Option<String>,
    prev_hash: Option<String>,
    broken: bool,
}

struct Walk {
    heads: BTreeMap<i64, ChainHead>,
    anchored: BTreeMap<i64, AnchoredHead>,
    found: Verified,
    chain: Option<Chain>,
}

impl Walk {
    fn link(&mut self, link: Link) {
        self.found.links += 1;
        if self.chain.as_ref().is_none_or(|chain| chain.partner != link.partner) {
            self.end_chain();
            self.found.chains += 1;
            self.chain = Some(Chain { partner: link.partner, next: 1, prev: None, prev_hash: None, broken: false });
        }
        let Some(chain) = self.chain.as_mut() else { return };
        if chain.broken {
            return;
        }
        let whose = partner_name(link.partner);
        let place = format!("{} ({whose}, link {})", link.row, link.seq);
        let problem = if link.seq < chain.next {
            Some(format!("{place} has the number of an earlier link: a link was copied or renumbered"))
        } else if link.seq > chain.next {
            Some(format!(
                "{} (link {} of {whose}) is missing: {}, the next link, names it as the link before",
                describe(link.prev.as_deref()),
                chain.next,
                link.row
            ))
        } else if link.prev != chain.prev {
            Some(format!(
                "{place} names {} as the link before it, but the chain has {}",
                describe(link.prev.as_deref()),
                describe(chain.prev.as_deref())
            ))
        } else if link_hash(chain.prev_hash.as_deref(), link.seq, link.prev.as_deref(), &link.content) != link.hash {
            Some(format!("{place} was changed after it was written: its content no longer matches its hash"))
        } else {
            match self.anchored.get(&link.partner) {
                Some(anchored) if anchored.link == link.seq && anchored.hash != link.hash => Some(format!(
                    "{place} differs from the anchor: the chain up to it was rewritten since the anchor was taken"
                )),
                _ => None,
            }
        };
        match problem {
            Some(problem) => {
                chain.broken = true;
                self.found.breaks.push(problem);
            }
            None => {
                chain.next = link.seq + 1;
                chain.prev = Some(link.row.encode());
                chain.prev_hash = Some(link.hash);
            }
        }
    }

    /// Checks the chain just walked against its head and its anchor.
    fn end_chain(&mut self) {
        let Some(chain) = self.chain.take() else { return };
        let last = chain.next - 1;
        let whose = partner_name(chain.partner);
        let head = self.heads.remove(&chain.partner);
        let anchored = self.anchored.remove(&chain.partner);
        if chain.broken {
            return;
        }
        let problem = match &head {
            None => Some(format!("{whose} has no head (chain_heads): it was removed")),
            Some(head) if head.seq > last => Some(format!(
                "{} (link {} of {whose}, its head) is missing: the chain ends at link {last}",
                describe(Some(&head.last)),
                head.seq
            )),
            Some(head) if head.seq < last || chain.prev_hash.as_deref() != Some(&*head.hash) => {
                Some(format!("{whose} does not end at its head (chain_heads): the head was changed"))
            }
            Some(_) => None,
        };
        let problem = problem.or_else(|| {
            anchored.filter(|anchored| anchored.link > last).map(|anchored| {
                format!(
                    "{whose} ends at link {last}, before link {} which the anchor holds: links were removed",
                    anchored.link
                )
            })
        });
        self.found.breaks.extend(problem);
    }

    fn finish(mut self) -> Verified {
        self.end_chain();
        for head in self.heads.values() {
            self.found.breaks.push(format!(
                "{} is missing: {} has no links left, its head is link {}",
                describe(Some(&head.last)),
                partner_name(head.partner),
                head.seq
            ));
        }
        // A chain the anchor holds that has no links at all (one whose head is
        // still there was reported just above).
        for anchored in self.anchored.values() {
            if !self.heads.contains_key(&anchored.partner) {
                self.found.breaks.push(format!(
                    "{} has no links, but the anchor holds its link {}",
                    partner_name(anchored.partner),
                    anchored.link
                ));
            }
        }
        self.found
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::store::chain::LinkRef;

    /// A store of links in memory, sealed as the engines seal them.
    struct Links {
        links: Vec<Link>,
        heads: Vec<ChainHead>,
        /// What the first read of the heads sees, if not `heads` (a write
        /// committed while the walk ran).
        heads_at_first: std::sync::Mutex<Option<Vec<ChainHead>>>,
    }

    impl Links {
        /// Partner 7's chain of `n` links: history rows 1.., then journal 1.
        fn chain(n: i64) -> Links {
            let mut pending: Vec<Link> = (1..n)
                .map(|id| link(LinkTable::History, id, format!("history row {id}")))
                .chain([link(LinkTable::Journal, 1, "a journal".into())])
                .collect();
            let mut heads = BTreeMap::new();
            crate::store::chain::seal(&mut pending, &mut heads);
            Links { links: pending, heads: heads.into_values().collect(), heads_at_first: Default::default() }
        }
    }

    fn link(table: LinkTable, id: i64, content: String) -> Link {
        Link {
            row: LinkRef { table, id },
            partner: 7,
            seq: 0,
            prev: None,
            hash: String::new(),
            content: content.into_bytes(),
        }
    }

    #[async_trait]
    impl ChainStore for Links {
        async fn chain_heads(&self) -> Result<Vec<ChainHead>, StoreError> {
            let first = self.heads_at_first.lock().unwrap_or_else(|e| panic!("{e}")).take();
            Ok(first.unwrap_or_else(|| self.heads.clone()))
        }

        async fn chain_links(&self, table: LinkTable, after: LinkCursor, limit: u32) -> Result<Vec<Link>, StoreError> {
            let mut links: Vec<Link> = self
                .links
                .iter()
                .filter(|l| l.row.table == table && (l.partner, l.seq) > (after.partner, after.seq))
                .cloned()
                .collect();
            links.sort_by_key(|l| (l.partner, l.seq));
            links.truncate(limit as usize);
            Ok(links)
        }

        async fn unsealed_links(&self, _limit: u32) -> Result<Vec<LinkRef>, StoreError> {
            Ok(Vec::new())
        }
    }

    fn found(store: &Links, anchor: Option<&Anchor>) -> Verified {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap_or_else(|e| panic!("{e}"));
        runtime.block_on(verify(store, anchor)).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_whole_chain_verifies_across_pages_and_tables() {
        let store = Links::chain(12_000);
        let verified = found(&store, None);
        assert_eq!((verified.links, verified.chains, verified.breaks), (12_000, 1, Vec::<String>::new()));
    }

    #[test]
    fn each_kind_of_break_is_named_at_its_first_link() {
        let mut changed = Links::chain(5);
        changed.links[2].content = b"edited".to_vec();
        assert_eq!(
            found(&changed, None).breaks,
            ["status_history row 3 (AOP-7's chain, link 3) was changed after it was written: its content no longer matches its hash"]
        );

        let mut renumbered = Links::chain(5);
        renumbered.links[3].seq = 3;
        let breaks = found(&renumbered, None).breaks;
        assert!(breaks[0].contains("the number of an earlier link"), "{breaks:?}");

        let mut relinked = Links::chain(5);
        relinked.links[3].prev = Some("history:1".into());
        let breaks = found(&relinked, None).breaks;
        assert!(
            breaks[0].starts_with("status_history row 4 (AOP-7's chain, link 4) names status_history row 1"),
            "{breaks:?}"
        );

        let mut headless = Links::chain(5);
        headless.heads.clear();
        assert_eq!(found(&headless, None).breaks, ["AOP-7's chain has no head (chain_heads): it was removed"]);

        let mut rewound = Links::chain(5);
        rewound.heads[0] = ChainHead {
            seq: 3,
            last: "history:3".into(),
            hash: rewound.links[2].hash.clone(),
            ..rewound.heads[0].clone()
        };
        let breaks = found(&rewound, None).breaks;
        assert_eq!(breaks, ["AOP-7's chain has link 5 past its head, link 3 (chain_heads): the head was changed"]);

        let mut last_gone = Links::chain(5);
        last_gone.links.pop();
        assert_eq!(
            found(&last_gone, None).breaks,
            ["journal 1 (link 5 of AOP-7's chain, its head) is missing: the chain ends at link 4"]
        );
    }

    #[test]
    fn links_committed_while_the_walk_runs_are_not_breaks() {
        let store = Links::chain(5);
        let early =
            ChainHead { seq: 3, last: "history:3".into(), hash: store.links[2].hash.clone(), ..store.heads[0].clone() };
        *store.heads_at_first.lock().unwrap_or_else(|e| panic!("{e}")) = Some(vec![early]);
        let verified = found(&store, None);
        assert_eq!(
            (verified.links, verified.breaks),
            (3, Vec::<String>::new()),
            "links 4 and 5 came after the heads were read"
        );
    }

    #[test]
    fn an_anchor_catches_a_chain_rewritten_with_fresh_hashes() {
        let original = Links::chain(5);
        let anchor = Anchor {
            anchored_at: "2026-12-04 19:00:00".into(),
            chains: vec![AnchoredHead { partner: 7, link: 3, hash: original.links[2].hash.clone() }],
        };
        assert!(found(&original, Some(&anchor)).breaks.is_empty());
        // Row 2 edited and every hash from it on recomputed: a chain that verifies on its own.
        let mut rewritten = Links::chain(5);
        for link in &mut rewritten.links {
            link.seq = 0;
            link.prev = None;
        }
        rewritten.links[1].content = b"edited".to_vec();
        let mut heads = BTreeMap::new();
        crate::store::chain::seal(&mut rewritten.links, &mut heads);
        rewritten.heads = heads.into_values().collect();
        assert!(found(&rewritten, None).breaks.is_empty());
        let breaks = found(&rewritten, Some(&anchor)).breaks;
        assert_eq!(breaks.len(), 1, "{breaks:?}");
        assert!(
            breaks[0].starts_with("status_history row 3 (AOP-7's chain, link 3) differs from the anchor"),
            "{breaks:?}"
        );
    }
}
