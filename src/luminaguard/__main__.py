from luminaguard.cli import main

raise SystemExit(main())
