"""Pure rating: contract + usage → statement lines (Decimal), reconciliation. Imports wire only."""
