# Install layout of the files around the daemon, and the Debian package (CPack DEB).
#
# The supported system install is a build configured with -DCMAKE_INSTALL_PREFIX=/usr (what the
# package does): the binary's built-in migrations path, the unit's ExecStart= and the config
# path then all agree. See systemd/README.md ("Install layout").
#
#   cmake -S . -B build-pkg -G Ninja -DCMAKE_INSTALL_PREFIX=/usr \
#         -DMAILTRAIL_BUILD_TESTS=OFF
#   cmake --build build-pkg --target package      # -> build-pkg/mailtrail_<version>_<arch>.deb
#
# The install components "Unspecified" (the mailtrail and postgrid-sim binaries and the
# migrations, installed by src/app and tests/simulator; contract.md: the package installs both)
# and "mailtrail" (below) go into the package.
include(GNUInstallDirs)

# /etc/mailtrail for a /usr (or /) prefix, <prefix>/etc/mailtrail otherwise (GNUInstallDirs rule).
set(MAILTRAIL_SYSCONF_DIR "${CMAKE_INSTALL_FULL_SYSCONFDIR}/mailtrail"
    CACHE PATH "Where mailtrail.yaml (and the admin's mailtrail.env) are installed")
# Debian 12 ships units in /lib/systemd/system (lintian insists); other prefixes keep theirs.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(_mailtrail_unit_dir_default "/lib/systemd/system")
else()
  set(_mailtrail_unit_dir_default "${CMAKE_INSTALL_LIBDIR}/systemd/system")
endif()
set(MAILTRAIL_SYSTEMD_UNIT_DIR "${_mailtrail_unit_dir_default}"
    CACHE PATH "Where mailtrail.service is installed (relative: under the prefix)")
set(MAILTRAIL_DEB_MAINTAINER "mailtrail maintainers <mailtrail@example.org>"
    CACHE STRING "Maintainer: field of the Debian package")

# The unit names /usr/bin and /etc/mailtrail; a build for another prefix gets a unit that points
# at where this build installs. For the /usr prefix the installed unit is the file verbatim.
file(READ "${PROJECT_SOURCE_DIR}/systemd/mailtrail.service" _mailtrail_unit)
string(REPLACE "/usr/bin/mailtrail" "${CMAKE_INSTALL_FULL_BINDIR}/mailtrail" _mailtrail_unit
       "${_mailtrail_unit}")
string(REPLACE "/etc/mailtrail/" "${MAILTRAIL_SYSCONF_DIR}/" _mailtrail_unit "${_mailtrail_unit}")
file(CONFIGURE OUTPUT "${PROJECT_BINARY_DIR}/packaging/mailtrail.service"
     CONTENT "${_mailtrail_unit}" @ONLY)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             "${PROJECT_SOURCE_DIR}/systemd/mailtrail.service")

install(FILES "${PROJECT_SOURCE_DIR}/config/mailtrail.yaml"
        DESTINATION "${MAILTRAIL_SYSCONF_DIR}" COMPONENT mailtrail)
install(FILES "${PROJECT_BINARY_DIR}/packaging/mailtrail.service"
        DESTINATION "${MAILTRAIL_SYSTEMD_UNIT_DIR}" COMPONENT mailtrail)
install(FILES "${PROJECT_SOURCE_DIR}/packaging/mailtrail.env.example"
        DESTINATION "${CMAKE_INSTALL_DATADIR}/mailtrail" COMPONENT mailtrail)

# Debian's documentation files: copyright and a native-package changelog.gz (lintian errors
# without them). gzip -n keeps the archive reproducible; the date honours SOURCE_DATE_EPOCH.
set(MAILTRAIL_DEB_VERSION "${PROJECT_VERSION}")
string(TIMESTAMP MAILTRAIL_DEB_DATE "%a, %d %b %Y %H:%M:%S +0000" UTC)
configure_file("${PROJECT_SOURCE_DIR}/packaging/changelog.in"
               "${PROJECT_BINARY_DIR}/packaging/changelog" @ONLY)
find_program(MAILTRAIL_GZIP gzip)
if(MAILTRAIL_GZIP)
  add_custom_command(
    OUTPUT "${PROJECT_BINARY_DIR}/packaging/changelog.gz"
    COMMAND "${MAILTRAIL_GZIP}" -n -9 -c "${PROJECT_BINARY_DIR}/packaging/changelog"
            > "${PROJECT_BINARY_DIR}/packaging/changelog.gz"
    DEPENDS "${PROJECT_BINARY_DIR}/packaging/changelog"
    COMMENT "Compressing the Debian changelog")
  add_custom_target(mailtrail_deb_changelog ALL
                    DEPENDS "${PROJECT_BINARY_DIR}/packaging/changelog.gz")
  install(FILES "${PROJECT_BINARY_DIR}/packaging/changelog.gz"
          DESTINATION "${CMAKE_INSTALL_DOCDIR}" COMPONENT mailtrail)
endif()
install(FILES "${PROJECT_SOURCE_DIR}/packaging/copyright"
        DESTINATION "${CMAKE_INSTALL_DOCDIR}" COMPONENT mailtrail)
install(FILES "${PROJECT_SOURCE_DIR}/README.md" "${PROJECT_SOURCE_DIR}/systemd/README.md"
              "${PROJECT_SOURCE_DIR}/docs/sql.md"
        DESTINATION "${CMAKE_INSTALL_DOCDIR}" COMPONENT mailtrail OPTIONAL)

# --- CPack: one monolithic .deb -------------------------------------------------------------
set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "mailtrail")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_VENDOR "mailtrail")
set(CPACK_PACKAGE_CONTACT "${MAILTRAIL_DEB_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "history of PostGrid print and mail orders in PostgreSQL")
set(CPACK_PACKAGING_INSTALL_PREFIX "${CMAKE_INSTALL_PREFIX}")
set(CPACK_STRIP_FILES ON)
set(CPACK_COMPONENTS_ALL Unspecified mailtrail)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_NAME "mailtrail")
set(CPACK_DEBIAN_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${MAILTRAIL_DEB_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION "mail")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
# CPack writes CPACK_PACKAGE_DESCRIPTION_SUMMARY as the synopsis, then these lines.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "mailtrail follows every PostGrid order (letters, postcards, cheques, self
mailers, boxes, snap packs and return envelope orders) by polling the API
and receiving its webhooks, and records every status, USPS barcode and
carrier tracking change exactly once in PostgreSQL, with views for SQL and
BI tools. It runs as the systemd service mailtrail.service.")
# Runtime libraries computed by dpkg-shlibdeps (dpkg-dev), plus what the maintainer scripts use.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# (deb-systemd-invoke comes from init-system-helpers, which is essential: no Depends.)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "postgresql-client")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "postgresql")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${PROJECT_SOURCE_DIR}/packaging/conffiles;${PROJECT_SOURCE_DIR}/packaging/postinst;${PROJECT_SOURCE_DIR}/packaging/prerm;${PROJECT_SOURCE_DIR}/packaging/postrm")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
