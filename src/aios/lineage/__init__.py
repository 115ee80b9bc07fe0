"""Where data comes from and goes to: jobs' dataset inputs and outputs, the reuse of
a step's earlier outputs, and the lineage graph linking datasets, jobs and models."""
