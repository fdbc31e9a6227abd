"""Cluster mode: one dataset split by customer_id into partitions, each an ordinary engine
dataset owned by a Ray actor, behind a coordinator with the Engine's interface
(`ClusterEngine`). Needs the `cluster` extra (ray); nothing else imports this package.
See docs/cluster.md."""
