//! Public (Elastic) addresses: allocation, association, release, quotas.
