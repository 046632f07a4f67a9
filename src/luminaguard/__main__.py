from luminaguard.quick import main

raise SystemExit(main())
