//! A query's results, fetched a page at a time (`x-ms-max-item-count`, `x-ms-continuation`), and
//! bounded: a repeated continuation token, more pages than `max_query_pages` or a listing longer
//! than `query_timeout` end it with [`Error::Paging`].

use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasher;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use dps_wire::service::{CONTINUATION_HEADER, MAX_ITEM_COUNT_HEADER, QuerySpecification};
use serde::de::DeserializeOwned;

use crate::http::{Call, Http, read_json};
use crate::{Error, Result};

/// A query's results; an error ends the iteration after it is yielded.
pub struct Query<'a, T> {
    http: &'a Http,
    path: String,
    body: Option<String>,
    page_size: Option<u32>,
    continuation: Option<String>,
    /// Hashes of every continuation token seen (a token may be long; its hash is enough to see a loop).
    seen: HashSet<u64>,
    hasher: std::collections::hash_map::RandomState,
    buffer: VecDeque<T>,
    /// An error to yield once the items before it are out.
    pending: Option<Error>,
    done: bool,
    pages: usize,
    max_pages: usize,
    deadline: Option<(Instant, Duration)>,
    _t: PhantomData<T>,
}

impl<'a, T: DeserializeOwned> Query<'a, T> {
    /// A query of `path` (`query`: the body's SQL, if any), ended after `max_pages` pages or, when
    /// `timeout` is set, after that long (the client's `max_query_pages` and `query_timeout`).
    pub(crate) fn new(
        http: &'a Http,
        path: String,
        query: Option<&str>,
        page_size: Option<u32>,
        max_pages: usize,
        timeout: Option<Duration>,
    ) -> Self {
        Query {
            http,
            path,
            body: query.and_then(|q| serde_json::to_string(&QuerySpecification::new(q)).ok()),
            page_size,
            continuation: None,
            seen: HashSet::new(),
            hasher: Default::default(),
            buffer: VecDeque::new(),
            pending: None,
            done: false,
            pages: 0,
            max_pages,
            deadline: timeout.map(|t| (Instant::now() + t, t)),
            _t: PhantomData,
        }
    }

    /// Pages fetched so far.
    pub fn pages(&self) -> usize {
        self.pages
    }

    fn fetch(&mut self) -> Result<()> {
        let what = format!("query {}", self.path);
        let paging = |message: String| Error::Paging {
            what: what.clone(),
            message,
        };
        if self.pages >= self.max_pages {
            return Err(paging(format!(
                "stopped after {} pages, the listing's page cap (max_query_pages); the service kept sending continuation tokens",
                self.pages
            )));
        }
        if let Some((at, t)) = self.deadline {
            if Instant::now() >= at {
                return Err(paging(format!(
                    "stopped after {} pages: the listing took longer than its deadline of {} s (query_timeout)",
                    self.pages,
                    t.as_secs()
                )));
            }
        }
        let mut headers = Vec::new();
        if let Some(n) = self.page_size {
            headers.push((MAX_ITEM_COUNT_HEADER, n.to_string()));
        }
        if let Some(c) = &self.continuation {
            headers.push((CONTINUATION_HEADER, c.clone()));
        }
        let r = self.http.send(&Call {
            method: "POST",
            path: &self.path,
            what: &what,
            if_match: None,
            headers: &headers,
            body: self.body.as_deref(),
        })?;
        self.continuation = r
            .header(CONTINUATION_HEADER)
            .map(str::to_string)
            .filter(|c| !c.is_empty());
        let items: Vec<T> = read_json(r, &what)?;
        self.pages += 1;
        if let Some(c) = &self.continuation {
            if !self.seen.insert(self.hasher.hash_one(c)) {
                // This page's items still count; the error follows them.
                self.pending = Some(paging(format!(
                    "the service sent a continuation token it had sent before (page {}): the listing would never end",
                    self.pages
                )));
                self.continuation = None;
            } else if items.is_empty() {
                // A continuation with nothing in the page would loop for ever.
                return Err(Error::Protocol {
                    what,
                    message: "an empty page with a continuation token".into(),
                });
            }
        }
        self.buffer.extend(items);
        Ok(())
    }
}

impl<T: DeserializeOwned> Iterator for Query<'_, T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        loop {
            if let Some(item) = self.buffer.pop_front() {
                return Some(Ok(item));
            }
            if let Some(e) = self.pending.take() {
                self.done = true;
                return Some(Err(e));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.fetch() {
                self.done = true;
                return Some(Err(e));
            }
            if self.continuation.is_none() && self.pending.is_none() {
                self.done = true;
            }
        }
    }
}
