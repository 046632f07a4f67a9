"""The Approval Cliff: risk levels, the policy file, and who decides."""
