"""The database of hosted indexes: schema, migrations, and a synchronous access API."""
