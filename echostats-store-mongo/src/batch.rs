//! Writing plays: the insert batch (one transaction), rollup maintenance and rebuilds.
//!
//! MongoDB transactions have no savepoints, so the batch keeps [`PlayBatch`]'s defaults
//! for them: the importer then commits a batch per file.

use crate::codec::{day_doc, day_from_doc, day_num, entry_from_doc, ms_ceil, ms_floor, num, play_doc};
use crate::error::{is_duplicate, MongoError, MongoResult};
use crate::{MongoStore, META, PLAYS, ROLLUPS};
use async_trait::async_trait;
use chrono::{Duration, NaiveDate};
use echostats_core::ingest::{plan_insert, Replacement, RollupDelta};
use echostats_core::model::{HistoryEntry, PlayAnchor, PlayRecord, RollupDay};
use echostats_core::rules::PlayRules;
use echostats_core::store::{InsertOutcome, PlayBatch};
use echostats_core::Result;
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::ReturnDocument;
use mongodb::ClientSession;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tokio::sync::OwnedMutexGuard;

/// Plays per `insert_many` call.
const INSERT_CHUNK: usize = 5_000;
/// Ids per `$in` read.
const IN_CHUNK: usize = 5_000;

/// An insert batch: one MongoDB transaction, holding this process's write lock of the
/// user. Plays are written by each insert; rollup changes are accumulated and written
/// at commit, in the same transaction.
pub(crate) struct MongoBatch {
    store: MongoStore,
    session: ClientSession,
    _guard: OwnedMutexGuard<()>,
    user_id: String,
    rules: PlayRules,
    /// The widest duplicate window the user's plays were stored under, these rules' own
    /// included: what the candidate reads reach by.
    widest_window: Duration,
    days: BTreeMap<NaiveDate, RollupDay>,
    poisoned: bool,
}

/// The widest duplicate window a rules document says the user's plays were stored under
/// (the last batch's, for documents from before it was kept).
fn widest_window_of(rules: &Document) -> Option<Duration> {
    num(rules, "widest_window_ms").or_else(|| num(rules, "duplicate_window_ms")).map(Duration::milliseconds)
}

fn rules_id(user_id: &str) -> String {
    format!("rules\u{1f}{user_id}")
}

impl MongoStore {
    /// Starts a transaction on a new session.
    pub(crate) async fn begin_session(&self) -> MongoResult<ClientSession> {
        let mut session = self.client.start_session().await?;
        session.start_transaction().await?;
        Ok(session)
    }

    /// Starts a batch: locks the user, and when the stored rules count plays differently
    /// from `rules`, recomputes the user's rollups under `rules` first (the reference
    /// store always aggregates under the rules of the last batch).
    pub(crate) async fn begin_batch_inner(&self, user_id: &str, rules: &PlayRules) -> MongoResult<MongoBatch> {
        let guard = self.user_lock(user_id).lock_owned().await;
        let mut session = self.begin_session().await?;
        let stored = self.stored_rules(user_id, Some(&mut session)).await?;
        let stored_window = stored.as_ref().and_then(widest_window_of);
        let widest_window = match stored.and_then(|d| num(&d, "min_play_ms")) {
            Some(min) if min != rules.min_play_ms => {
                self.rebuild_in(&mut session, user_id, rules, stored_window).await?
            }
            _ => self.store_rules(&mut session, user_id, rules, stored_window).await?,
        };
        Ok(MongoBatch {
            store: self.clone(),
            session,
            _guard: guard,
            user_id: user_id.to_string(),
            rules: rules.clone(),
            widest_window,
            days: BTreeMap::new(),
            poisoned: false,
        })
    }

    /// The user's rules document: the minimum play length the aggregates were computed
    /// under, the duplicate window of the last batch and the widest one ever used.
    async fn stored_rules(&self, user_id: &str, session: Option<&mut ClientSession>) -> MongoResult<Option<Document>> {
        let meta = self.coll(META);
        let find = meta.find_one(doc! { "_id": rules_id(user_id) });
        Ok(match session {
            Some(s) => find.session(s).await?,
            None => find.await?,
        })
    }

    /// The minimum play length in force for the user's reads.
    pub(crate) async fn min_play_ms(&self, user_id: &str) -> MongoResult<i64> {
        let stored = self.stored_rules(user_id, None).await?.and_then(|d| num(&d, "min_play_ms"));
        Ok(stored.unwrap_or(PlayRules::default().min_play_ms))
    }

    /// Stores `rules` as the user's and widens the kept widest window (`stored_window`,
    /// from [`widest_window_of`] the stored rules) to theirs; returns that window.
    async fn store_rules(
        &self,
        session: &mut ClientSession,
        user_id: &str,
        rules: &PlayRules,
        stored_window: Option<Duration>,
    ) -> MongoResult<Duration> {
        let widest = rules.widest_window(stored_window);
        self.coll(META)
            .update_one(
                doc! { "_id": rules_id(user_id) },
                doc! { "$set": {
                    "min_play_ms": rules.min_play_ms,
                    "duplicate_window_ms": rules.duplicate_window.num_milliseconds(),
                    "widest_window_ms": widest.num_milliseconds(),
                } },
            )
            .upsert(true)
            .session(session)
            .await?;
        Ok(widest)
    }

    /// Reserves `n` consecutive play ids of the user, in the batch's transaction (a
    /// rolled-back batch hands its ids back).
    async fn reserve_ids(&self, session: &mut ClientSession, user_id: &str, n: usize) -> MongoResult<i64> {
        let d = self
            .coll(META)
            .find_one_and_update(doc! { "_id": format!("ids\u{1f}{user_id}") }, doc! { "$inc": { "next": n as i64 } })
            .upsert(true)
            .return_document(ReturnDocument::After)
            .session(session)
            .await?
            .ok_or_else(|| MongoError::Corrupt("id counter missing after upsert".into()))?;
        let next = num(&d, "next").ok_or_else(|| MongoError::Corrupt("id counter without value".into()))?;
        Ok(next - n as i64 + 1)
    }

    /// Rebuilds the user's rollups from raw plays under `rules`, in `session`'s
    /// transaction, and stores the rules (returning the widest window, as `store_rules`).
    pub(crate) async fn rebuild_in(
        &self,
        session: &mut ClientSession,
        user_id: &str,
        rules: &PlayRules,
        stored_window: Option<Duration>,
    ) -> MongoResult<Duration> {
        self.coll(ROLLUPS).delete_many(doc! { "u": user_id }).session(&mut *session).await?;
        let mut days: BTreeMap<NaiveDate, RollupDay> = BTreeMap::new();
        let mut cursor = self
            .coll(PLAYS)
            .find(doc! { "u": user_id, "k": 0 })
            .projection(doc! { "n": 1, "u": 1, "r": 1 })
            .session(&mut *session)
            .await?;
        while let Some(d) = cursor.next(&mut *session).await {
            let (_, e) = entry_from_doc(&d?)?;
            let r = &e.record;
            if r.keys(rules).counted {
                let (day, slot) = RollupDay::slot_of(r.played_at);
                let day = days.entry(day).or_insert_with(|| RollupDay::empty(day));
                day.plays[slot] += 1;
                day.ms[slot] += r.ms_played;
            }
        }
        let docs: Vec<Document> = days.values().map(|d| day_doc(user_id, d)).collect();
        for chunk in docs.chunks(INSERT_CHUNK) {
            self.coll(ROLLUPS).insert_many(chunk).session(&mut *session).await?;
        }
        self.store_rules(session, user_id, rules, stored_window).await
    }

    pub(crate) async fn rebuild_inner(&self, user_id: &str, rules: &PlayRules) -> MongoResult<()> {
        let _guard = self.user_lock(user_id).lock_owned().await;
        let mut session = self.begin_session().await?;
        let stored_window = self.stored_rules(user_id, Some(&mut session)).await?.as_ref().and_then(widest_window_of);
        self.rebuild_in(&mut session, user_id, rules, stored_window).await?;
        session.commit_transaction().await?;
        Ok(())
    }
}

#[async_trait]
impl PlayBatch for MongoBatch {
    async fn insert_anchored(
        &mut self,
        plays: Vec<PlayRecord>,
        anchored: Vec<(usize, PlayAnchor)>,
    ) -> Result<InsertOutcome> {
        if self.poisoned {
            return Err(MongoError::Poisoned.into_core());
        }
        let result = self.insert_inner(plays, anchored).await;
        self.poisoned = result.is_err();
        result.map_err(MongoError::into_core)
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        async move {
            if self.poisoned {
                let _ = self.session.abort_transaction().await;
                return Err(MongoError::Poisoned);
            }
            let days = std::mem::take(&mut self.days);
            apply_days(&self.store, &mut self.session, &self.user_id, &days).await?;
            self.session.commit_transaction().await?;
            Ok(())
        }
        .await
        .map_err(MongoError::into_core)
    }

    async fn rollback(mut self: Box<Self>) -> Result<()> {
        self.session.abort_transaction().await.map_err(|e| MongoError::from(e).into_core())
    }
}

impl MongoBatch {
    async fn insert_inner(
        &mut self,
        plays: Vec<PlayRecord>,
        anchored: Vec<(usize, PlayAnchor)>,
    ) -> MongoResult<InsertOutcome> {
        let (Some(min), Some(max)) = (plays.iter().map(|p| p.played_at).min(), plays.iter().map(|p| p.played_at).max())
        else {
            return Ok(InsertOutcome::default());
        };
        let (lo, hi) = self.rules.candidate_window(self.widest_window, min, max);
        let user_id = self.user_id.as_str();
        let plays_coll = self.store.coll(PLAYS);

        // Stored plays that may be duplicates, in id (= insertion) order like the
        // reference store, so the plan picks the same candidates. Only entries of the
        // same kind can match.
        let kinds: BTreeSet<i32> = plays.iter().map(|p| p.kind.code()).collect();
        let kinds: Vec<Bson> = kinds.into_iter().map(Bson::Int32).collect();
        let mut cursor = plays_coll
            .find(doc! { "u": user_id, "at": { "$gte": ms_ceil(lo), "$lte": ms_floor(hi) }, "k": { "$in": kinds } })
            .sort(doc! { "n": 1 })
            .session(&mut self.session)
            .await?;
        let mut existing: Vec<HistoryEntry> = Vec::new();
        while let Some(d) = cursor.next(&mut self.session).await {
            existing.push(entry_from_doc(&d?)?.1);
        }
        drop(cursor);

        let plan = plan_insert(existing, plays, &anchored, &self.rules);
        let mut outcome = plan.outcome;
        let mut delta = plan.delta;

        // Replacements: rewrite in place, same id.
        for Replacement { id, record, anchor, .. } in &plan.replacements {
            let id: i64 = id.parse().map_err(|_| MongoError::Corrupt(format!("play id {id:?}")))?;
            let d = play_doc(id, user_id, record, *anchor, &record.keys(&self.rules))?;
            plays_coll.replace_one(doc! { "u": user_id, "n": id }, d).session(&mut self.session).await?;
        }

        // New plays: unordered bulk inserts. A duplicate key (the same play written by
        // someone else meanwhile) only drops that entry.
        if !plan.inserts.is_empty() {
            let first = self.store.reserve_ids(&mut self.session, user_id, plan.inserts.len()).await?;
            let docs = plan
                .inserts
                .iter()
                .zip(&plan.insert_anchors)
                .zip(&plan.insert_keys)
                .enumerate()
                .map(|(i, ((r, anchor), k))| play_doc(first + i as i64, user_id, r, *anchor, k))
                .collect::<MongoResult<Vec<_>>>()?;
            for (chunk_no, chunk) in docs.chunks(INSERT_CHUNK).enumerate() {
                let result = plays_coll.insert_many(chunk).ordered(false).session(&mut self.session).await;
                match result {
                    Ok(_) => {}
                    Err(e) if is_duplicate(&e) => {
                        let failed: Vec<usize> = match &*e.kind {
                            mongodb::error::ErrorKind::InsertMany(m) => {
                                m.write_errors.iter().flatten().map(|w| w.index).collect()
                            }
                            _ => return Err(e.into()),
                        };
                        for i in failed {
                            let at = chunk_no * INSERT_CHUNK + i;
                            delta.add_keyed(&plan.inserts[at], &plan.insert_keys[at], -1);
                            outcome.added -= 1;
                            outcome.duplicates += 1;
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }

        merge_days(&mut self.days, delta);
        Ok(outcome)
    }
}

fn merge_days(into: &mut BTreeMap<NaiveDate, RollupDay>, delta: RollupDelta) {
    for (day, d) in delta.days {
        match into.get_mut(&day) {
            Some(pending) => pending.add(&d),
            None => {
                into.insert(day, d);
            }
        }
    }
}

/// Adds day deltas to the stored rollups: reads the range once, then replaces the
/// changed days (days left without plays are deleted: the reference store never reports
/// them).
async fn apply_days(
    store: &MongoStore,
    session: &mut ClientSession,
    user_id: &str,
    delta: &BTreeMap<NaiveDate, RollupDay>,
) -> MongoResult<()> {
    let (Some(first), Some(last)) = (delta.keys().next(), delta.keys().next_back()) else { return Ok(()) };
    let coll = store.coll(ROLLUPS);
    let mut cursor = coll
        .find(doc! { "u": user_id, "d": { "$gte": day_num(*first), "$lte": day_num(*last) } })
        .session(&mut *session)
        .await?;
    let mut stored: HashMap<NaiveDate, RollupDay> = HashMap::new();
    while let Some(d) = cursor.next(&mut *session).await {
        let day = day_from_doc(&d?)?;
        stored.insert(day.day, day);
    }
    drop(cursor);
    let mut touched: Vec<Bson> = Vec::new();
    let mut writes: Vec<Document> = Vec::new();
    for (day, d) in delta {
        let had = stored.contains_key(day);
        let mut total = stored.remove(day).unwrap_or_else(|| RollupDay::empty(*day));
        total.add(d);
        if had {
            touched.push(Bson::String(format!("{user_id}\u{1f}{}", day_num(*day))));
        }
        if !total.is_empty() {
            writes.push(day_doc(user_id, &total));
        }
    }
    for chunk in touched.chunks(IN_CHUNK) {
        coll.delete_many(doc! { "_id": { "$in": chunk } }).session(&mut *session).await?;
    }
    for chunk in writes.chunks(INSERT_CHUNK) {
        coll.insert_many(chunk).session(&mut *session).await?;
    }
    Ok(())
}
