"""What every parkleit service uses: settings, database, city registry, CLI."""
