"""The project database's history: Alembic's environment and one script per schema change.

Kept beside the domain rather than in it: a migration is a dated record of how the tables came to be
(``roger_economic.db.models`` says what they are now, and a test checks that the two agree), written
once and never edited; ``roger_economic.db.migrate`` runs them.
"""
