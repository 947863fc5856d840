#!/bin/sh
# Print the inspected state of objects, for before/after comparisons. Each argument is one case: a
# space-separated list of specs; the output of each case starts with a line "### case".
#   volume:NAME     name, driver, options, labels and mountpoint, and the volume's entries (without
#                   the hidden staging directory of an interrupted copy, which the next run resumes)
#   container:NAME  id, status, image and start time of a container
#   images:PREFIX   the images whose name starts with PREFIX, with their ids
#   path:PATH       every entry below PATH with its type and mode, and size and mtime of non-directories
#   registry:URL    the catalog of the registry at URL and the tags of each repository
# Anything missing prints its error text, which is part of the state too.
for case in "$@"; do
  echo "### case"
  for spec in $case; do
    kind=${spec%%:*}
    what=${spec#*:}
    echo "== $spec"
    case $kind in
      volume)
        # Not CreatedAt: for a local volume it is the ctime of its directory, which any new entry changes.
        if mountpoint=$(docker volume inspect --format '{{.Mountpoint}}' "$what" 2>&1); then
          # a bind volume's entries are in its device path
          case $(docker volume inspect --format '{{.Options.o}}' "$what") in
            *bind*) mountpoint=$(docker volume inspect --format '{{.Options.device}}' "$what") ;;
          esac
          docker volume inspect --format '{{.Name}} {{.Driver}} {{json .Options}} {{json .Labels}} {{.Mountpoint}}' "$what"
          # root reads a local volume's entries on this host (a tmpfs volume is empty while unused)
          (cd "$mountpoint" && find . ! -path "./.persist-docker-staging*" -printf '%p %y %m %U %G\n' | sort &&
            find . ! -path "./.persist-docker-staging*" ! -type d -printf '%p %s %T@\n' | sort)
        else
          echo "$mountpoint"
        fi
        ;;
      container)
        docker container inspect --format '{{.Id}} {{.State.Status}} {{.Image}} {{.State.StartedAt}}' "$what" 2>&1
        ;;
      images)
        docker image ls --no-trunc --format '{{.Repository}}:{{.Tag}} {{.ID}}' | grep "^$what" | sort
        ;;
      path)
        # directories without their mtime: a temporary file created and removed again changes it
        find "$what" -printf '%p %y %m\n' 2>&1 | sort
        find "$what" ! -type d -printf '%p %s %T@\n' 2>&1 | sort
        ;;
      registry)
        for repo in $(curl -sf "$what/v2/_catalog" | tr -d '{}[]"' | sed 's/^repositories://' | tr ',' ' '); do
          echo "$repo $(curl -sf "$what/v2/$repo/tags/list")"
        done
        ;;
      *)
        echo "unknown kind $kind" >&2
        exit 2
        ;;
    esac
  done
done
