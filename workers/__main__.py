from cartflow.workers.cli import main

raise SystemExit(main())
